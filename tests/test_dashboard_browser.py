"""The served dashboard in headless Chromium, against a monitor running a compressed simulated day.

Every request that does not go to 127.0.0.1 is blocked and recorded: the page must load all its JS/CSS and its CJK
font from the Panel server. The page must be Chinese by default, in WenQuanYi Micro Hei (body text and table cells),
with no console error; the language switch flips it to English. The test clicks 全部暂停 / 全部启动, submits a bad
task, waits for a trigger of the running day to show in the notifications and saves a screenshot of the Live view
(docs/dashboard.png, the README's image); a phone-sized page (390x844) is checked and shot too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import LoopbackOnly, dies_with_parent, free_port, wait_for
from workbench.advert import read_advert
from workbench.app import prepare_demo_day
from workbench.calendar import RealClock, TradingCalendar
from workbench.config import PROJECT_ROOT, Settings
from workbench.dashboard.i18n import t
from workbench.demo import default_demo_date
from workbench.remote import control_plane

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SYMBOLS, TASKS, SPEED, SHOWN_BARS = 120, 10, 60.0, 45
SCREENSHOT = PROJECT_ROOT / "docs" / "dashboard.png"
SHOTS = Path(os.environ.get("TMPDIR", "/tmp"))  # the other screenshots, to look at
FONT = "WenQuanYi Micro Hei"
STATUS_WORDS = {t(f"status.{s}"): s for s in ("running", "stopped")}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")


def answers(url: str) -> bool:
    """Whether the page is served. Panel builds a whole session per request: on a loaded machine that takes more
    than a few seconds, and a client that gives up sooner keeps asking for sessions the server never finishes."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own loopback server
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def live_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """A prepared database and the workbench server in its own process: it owns the file, runs the compressed day
    and serves the dashboard; the test reads what it did through the server's API, as every other client does."""
    db = tmp_path_factory.mktemp("dash") / "wb.duckdb"
    port = free_port()
    env = {**os.environ, "WORKBENCH_DB_PATH": str(db), "WORKBENCH_DEMO_SYMBOLS": str(SYMBOLS),
           "WORKBENCH_DEMO_TASKS": str(TASKS), "WORKBENCH_API_PORT": str(free_port()),
           "WORKBENCH_SQL_PORT": str(free_port())}
    settings = Settings(db_path=db, demo_symbols=SYMBOLS, demo_tasks=TASKS, service_stop_timeout=15)
    calendar = TradingCalendar()
    day = default_demo_date(calendar, RealClock().now().date())
    prepare_demo_day(settings, calendar, day)
    log = db.parent / "server.log"  # a file, not a pipe nobody reads: a full pipe would block the server
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "server", "--date", day.isoformat(),
                                   "--speed", str(SPEED), "--port", str(port), "--db", str(db)], env=env,
                                  stdout=out, stderr=subprocess.STDOUT, preexec_fn=dies_with_parent)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: (answers(url) and read_advert(db) is not None) or server.poll() is not None, timeout=120)
        assert server.poll() is None, log.read_text(errors="replace")
        yield settings, url
    finally:
        server.terminate()  # SIGTERM: the server stops the session, then lets the file go
        server.wait(timeout=60)
        print(log.read_text(errors="replace")[-4000:])  # shown by pytest when the test failed


def statuses(settings: Settings) -> set[str]:
    return set(control_plane(settings).list_tasks()["status"])


def table_statuses(page) -> set[str]:
    """The statuses the task table shows (its Chinese words read back)."""
    cells = page.locator(".tasks-table .tabulator-cell[tabulator-field='status']")
    return {STATUS_WORDS.get(text.strip(), text.strip()) for text in cells.all_inner_texts() if text.strip()}


def shown_bars(page) -> int:
    """Bars the Live view's caption says the chart shows."""
    found = re.search(r"(\d+) 根K线", page.locator(".live-caption p").first.inner_text())
    return int(found.group(1)) if found else 0


def watch(page, problems: list[str], fonts: list[tuple[str, int]]) -> None:
    """Record the page's console errors, uncaught exceptions and the font responses."""
    page.on("console", lambda msg: problems.append(f"console {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"pageerror {exc}"))
    page.on("response", lambda r: fonts.append((r.url, r.status)) if "/wb-fonts/" in r.url else None)


def hide_toasts(page) -> None:
    """Hide the toasts for a screenshot (their pane sits in a shadow root: a document style does not reach it)."""
    page.locator(".wb-toasts").evaluate_all("els => els.forEach(e => { e.style.display = 'none'; })")


def font_of(page, selector: str) -> str:
    return page.locator(selector).first.evaluate("e => getComputedStyle(e).fontFamily")


def assert_the_font_is_served_and_used(page, fonts: list[tuple[str, int]]) -> None:
    """The CJK font came from the dashboard's own loopback server, loaded, and body text and table cells use it."""
    assert fonts and all(urlparse(u).hostname == "127.0.0.1" and status == 200 for u, status in fonts), fonts
    wait_for(lambda: page.evaluate(f"document.fonts.check('14px \"{FONT}\"')"), timeout=20)
    assert FONT in page.evaluate("getComputedStyle(document.body).fontFamily")
    assert FONT in font_of(page, ".tabulator-cell")
    assert page.evaluate("[...document.fonts].some(f => f.family.includes('WenQuanYi') && f.status === 'loaded')")


def test_the_served_dashboard_works_offline_against_a_running_day(live_day):
    from playwright.sync_api import sync_playwright

    settings, url = live_day
    loopback_only = LoopbackOnly()
    outside = loopback_only.outside

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", loopback_only)
            sockets: list[str] = []
            problems: list[str] = []
            fonts: list[tuple[str, int]] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            watch(page, problems, fonts)
            page.goto(url, wait_until="networkidle")
            page.locator(".bk-tab", has_text="任务").click()  # the board is the first tab
            page.get_by_role("button", name="全部暂停").wait_for(timeout=30_000)
            wait_for(lambda: table_statuses(page), timeout=20)

            # Chinese by default, in the served CJK font.
            for word in ("A股监控工作台", "任务", "行情", "通知", "健康状态", "最新价", "涨跌幅", "成交量(手)",
                         "成交额"):
                assert any(found.is_visible() for found in page.get_by_text(word).all()), word
            assert_the_font_is_served_and_used(page, fonts)

            # Pause all, Start all: the database and the table follow.
            page.get_by_role("button", name="全部暂停").click()
            wait_for(lambda: statuses(settings) == {"stopped"}, timeout=20)
            wait_for(lambda: table_statuses(page) == {"stopped"}, timeout=20)
            page.get_by_role("button", name="全部启动").click()
            wait_for(lambda: statuses(settings) == {"running"}, timeout=20)
            wait_for(lambda: table_statuses(page) == {"running"}, timeout=20)

            # A bad task: the error beside its field, nothing written.
            before = len(control_plane(settings).list_tasks())
            page.locator(".form-task_name input").fill("bad range")
            page.locator(".form-stock_code input").fill("600519")
            page.locator(".form-entry_min input").fill("12")
            page.locator(".form-entry_max input").fill("10")
            page.locator(".form-entry_max input").press("Tab")
            page.get_by_role("button", name="创建任务").click()
            page.locator(".error-entry_min").get_by_text("must not exceed entry_max").wait_for(timeout=20_000)
            assert len(control_plane(settings).list_tasks()) == before

            # The language switch flips the labels of this page, without a reload, and back.
            page.locator(".wb-language select").select_option(label="English")
            page.locator(".bk-tab", has_text="Notifications").wait_for(timeout=20_000)
            page.get_by_role("button", name="Pause all").wait_for(timeout=20_000)
            page.locator(".wb-language select").select_option(label="中文")
            page.locator(".bk-tab", has_text="通知").wait_for(timeout=20_000)

            # A trigger of the running day shows in the notifications.
            page.locator(".bk-tab", has_text="通知").click()
            rows = page.locator(".notifications-table .tabulator-row")
            wait_for(lambda: rows.count() > 0, timeout=60)
            page.screenshot(path=str(SHOTS / "dashboard-1400-notifications.png"))

            # The Live view of the task that fired most: candles, levels and trigger markers.
            fired = control_plane(settings).list_tasks().sort_values(["fires_today", "task_id"],
                                                                      ascending=[False, True])
            task_id = int(fired["task_id"].iloc[0])
            page.locator(".bk-tab", has_text="行情").click()
            chooser = page.locator(".live-task select")
            value = chooser.locator("option", has_text=f"{task_id} ·").first.get_attribute("value")
            chooser.select_option(value=value)
            page.locator(".live-caption").get_by_text(re.compile(r"\b[1-9]\d* 次触发")).wait_for(timeout=30_000)
            # the chart follows the day until MA20 and BOLL have warmed up
            wait_for(lambda: shown_bars(page) >= SHOWN_BARS, timeout=60)
            hide_toasts(page)  # they would cover the chart
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
            page.locator(".bk-tab", has_text="任务").click()
            page.screenshot(path=str(SHOTS / "dashboard-1400-tasks.png"))
            assert problems == [], problems
            phone(browser, url, loopback_only)
        except BaseException:
            page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "dashboard-failure.png"))
            raise
        finally:
            browser.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert sockets and all(urlparse(s).hostname == "127.0.0.1" for s in sockets), sockets


def phone(browser, url: str, loopback_only) -> None:
    """A phone-sized page (390x844): Chinese, the served font, no console error, nothing wider than the screen."""
    page = browser.new_page(viewport={"width": 390, "height": 844})
    problems: list[str] = []
    fonts: list[tuple[str, int]] = []
    try:
        page.route("**/*", loopback_only)
        watch(page, problems, fonts)
        page.goto(url, wait_until="networkidle")
        page.locator(".bk-tab", has_text="任务").click()  # the board is the first tab
        page.get_by_role("button", name="全部暂停").wait_for(timeout=30_000)
        wait_for(lambda: table_statuses(page), timeout=20)
        assert_the_font_is_served_and_used(page, fonts)
        hide_toasts(page)
        for name, tab in (("board", "盯盘"), ("tasks", "任务"), ("live", "行情"), ("notifications", "通知"),
                          ("health", "健康状态")):
            page.locator(".bk-tab", has_text=tab).click()
            page.wait_for_timeout(1000)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the {name} tab is {width} px wide on a 390 px screen"
            page.screenshot(path=str(SHOTS / f"dashboard-390-{name}.png"))
        assert problems == [], problems
    finally:
        page.close()
