"""The quote board (盯盘) in headless Chromium, against the workbench server running a compressed simulated day with
five past sessions of daily bars stored (so 量比 has its reference). Non-loopback traffic is blocked. At 1400x1000
and at 390x844: the board is the first tab, its rows are the running tasks' stocks with prices, red / green
changes and sparklines, no console error, nothing wider than a phone's screen, and a click on a row opens that
row's chart in the Live tab. Saves docs/img/board-desktop.png and docs/img/board-phone.png mid-morning."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LoopbackOnly, dies_with_parent, free_port, wait_for
from tests.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, answers, hide_toasts, watch
from workbench.advert import read_advert
from workbench.app import prepare_demo_day
from workbench.calendar import RealClock, TradingCalendar
from workbench.config import PROJECT_ROOT, Settings
from workbench.dashboard.format import DOWN_COLOR, UP_COLOR
from workbench.demo import default_demo_date
from workbench.history import SimulatedBars
from workbench.remote import control_plane
from workbench.store.ticks import write_bars

SYMBOLS, TASKS, SPEED = 120, 10, 60.0
SHOT_AT = "10:20:00"  # the simulated time of the screenshots: an hour of the day drawn
IMAGES = PROJECT_ROOT / "docs" / "img"
HEADERS = ("名称/代码", "最新价", "涨跌幅", "涨速", "量比", "成交额", "换手率", "涨跌停", "距触发价", "分时")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def board_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """The demo's prepared day with the universe's last five sessions of daily bars, and the server running it."""
    db = tmp_path_factory.mktemp("board") / "wb.duckdb"
    port = free_port()
    env = {**os.environ, "WORKBENCH_DB_PATH": str(db), "WORKBENCH_DEMO_SYMBOLS": str(SYMBOLS),
           "WORKBENCH_DEMO_TASKS": str(TASKS), "WORKBENCH_API_PORT": str(free_port()),
           "WORKBENCH_SQL_PORT": str(free_port())}
    settings = Settings(db_path=db, demo_symbols=SYMBOLS, demo_tasks=TASKS, service_stop_timeout=15)
    calendar = TradingCalendar()
    day = default_demo_date(calendar, RealClock().now().date())
    store, universe, _ = prepare_demo_day(settings, calendar, day)
    past = calendar.sessions_in_range(day - dt.timedelta(days=14), calendar.previous_session(day))[-5:]
    daily = SimulatedBars(universe, settings.demo_seed, calendar).bars(universe["code"].tolist(), past[0], past[-1],
                                                                        "1d")
    with store.write() as con:
        write_bars(con, daily)
    log = db.parent / "server.log"
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
        server.terminate()
        server.wait(timeout=60)
        print(log.read_text(errors="replace")[-4000:])


def board_time(page) -> str:
    """The quote time the board's caption shows (HH:MM:SS), or ''."""
    found = re.search(r"行情时间 (\d\d:\d\d:\d\d)", page.locator(".board-caption p").first.inner_text())
    return found.group(1) if found else ""


def codes(page) -> set[str]:
    """The codes the board shows (each under its stock's name)."""
    return {text.strip() for text in page.locator(".board-table .wb-code").all_inner_texts()}


def cells(page, field: str) -> list[str]:
    return [text.strip() for text in
            page.locator(f".board-table .tabulator-cell[tabulator-field='{field}']").all_inner_texts()]


def open_board(browser, url: str, viewport: dict[str, int], loopback_only, problems: list[str]):
    """A page on the board, drawn from the running day up to ``SHOT_AT``."""
    page = browser.new_page(viewport=viewport)
    page.route("**/*", loopback_only)
    watch(page, problems, [])
    page.goto(url, wait_until="networkidle")
    page.locator(".board-table .tabulator-row").first.wait_for(timeout=30_000)
    try:
        wait_for(lambda: board_time(page) >= SHOT_AT, timeout=180)
    except AssertionError:
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "board-failure.png"))
        raise AssertionError(f"the board's caption: {page.locator('.board-caption p').first.inner_text()!r}") from None
    page.wait_for_timeout(1500)  # let a flash fade before the picture
    hide_toasts(page)
    return page


def click_opens_the_chart(page, settings: Settings) -> None:
    """A click on the first row's name opens the Live tab on a task of that stock."""
    name = page.locator(".board-table .wb-name").first.inner_text().strip()
    page.locator(".board-table .tabulator-row").first.locator(".tabulator-cell[tabulator-field='name']").click()
    page.locator(".bk-tab.bk-active", has_text="行情").wait_for(timeout=20_000)
    chosen = page.locator(".live-task select").evaluate("s => s.options[s.selectedIndex].text")
    tasks = control_plane(settings).list_tasks()
    assert name in chosen and set(tasks[tasks["stock_name"] == name]["task_id"].astype(str)) & {
        chosen.split(" · ")[0]}, chosen
    page.locator(".live-quote").get_by_text(name).wait_for(timeout=20_000)


def test_the_board_shows_the_running_day_and_a_row_opens_its_chart(board_day):
    from playwright.sync_api import sync_playwright

    settings, url = board_day
    loopback_only = LoopbackOnly()
    outside = loopback_only.outside

    running = set(control_plane(settings).list_tasks().query("status == 'running'")["stock_code"])
    IMAGES.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        problems: list[str] = []
        try:
            page = open_board(browser, url, {"width": 1400, "height": 1000}, loopback_only, problems)
            for header in HEADERS:
                assert page.locator(".board-table .tabulator-col-title", has_text=header).count(), header
            assert codes(page) == running
            assert all(re.fullmatch(r"\d+\.\d\d", p) for p in cells(page, "last"))
            assert any(re.fullmatch(r"\d+\.\d\d", r) for r in cells(page, "volume_ratio"))  # 5 sessions stored
            colors = page.locator(".board-table .tabulator-cell[tabulator-field='change'] span").evaluate_all(
                "spans => spans.map(s => s.style.color)")
            assert colors and set(colors) <= {rgb(UP_COLOR), rgb(DOWN_COLOR), rgb("#757575")}, colors
            assert page.locator(".board-table svg.wb-spark polyline").count() == len(running)
            assert any("跳" in text or "已到" in text for text in cells(page, "levels"))
            page.screenshot(path=str(IMAGES / "board-desktop.png"), animations="disabled")  # no flash caught
            click_opens_the_chart(page, settings)
            assert problems == [], problems

            phone = open_board(browser, url, {"width": 390, "height": 844}, loopback_only, problems)
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the board is {width} px wide on a 390 px screen"
            assert codes(phone) == running
            phone.screenshot(path=str(IMAGES / "board-phone.png"), animations="disabled")
            click_opens_the_chart(phone, settings)
            assert problems == [], problems
        finally:
            browser.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"


def rgb(color: str) -> str:
    """A #rrggbb colour as the browser reports a style's colour."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"
