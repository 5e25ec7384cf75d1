"""The served dashboard in headless Chromium, against a monitor running a compressed simulated day.

Every request that does not go to 127.0.0.1 is blocked and recorded: the page must load all its JS/CSS from the
Panel server. The test clicks Pause all / Start all, submits a bad task, waits for a trigger of the running day to
show in the notifications and saves a screenshot of the Live view (docs/dashboard.png, the README's image).
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

from tests.conftest import dies_with_parent, free_port, wait_for
from workbench.advert import read_advert
from workbench.app import prepare_demo_day
from workbench.calendar import RealClock, TradingCalendar
from workbench.config import PROJECT_ROOT, Settings
from workbench.demo import default_demo_date
from workbench.remote import control_plane

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SYMBOLS, TASKS, SPEED, SHOWN_BARS = 120, 10, 60.0, 45
SCREENSHOT = PROJECT_ROOT / "docs" / "dashboard.png"

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
    cells = page.locator(".tabulator-cell[tabulator-field='status']")
    return {t.strip() for t in cells.all_inner_texts() if t.strip()}


def shown_bars(page) -> int:
    """Bars the Live view's caption says the chart shows."""
    found = re.search(r"(\d+) bars", page.locator(".live-caption p").first.inner_text())
    return int(found.group(1)) if found else 0


def test_the_served_dashboard_works_offline_against_a_running_day(live_day):
    from playwright.sync_api import sync_playwright

    settings, url = live_day
    outside: list[str] = []

    def loopback_only(route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", loopback_only)
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.goto(url, wait_until="networkidle")
            page.get_by_role("button", name="Pause all").wait_for(timeout=30_000)
            wait_for(lambda: table_statuses(page), timeout=20)

            # Pause all, Start all: the database and the table follow.
            page.get_by_role("button", name="Pause all").click()
            wait_for(lambda: statuses(settings) == {"stopped"}, timeout=20)
            wait_for(lambda: table_statuses(page) == {"stopped"}, timeout=20)
            page.get_by_role("button", name="Start all").click()
            wait_for(lambda: statuses(settings) == {"running"}, timeout=20)
            wait_for(lambda: table_statuses(page) == {"running"}, timeout=20)

            # A bad task: the error beside its field, nothing written.
            before = len(control_plane(settings).list_tasks())
            page.get_by_placeholder("task_name").fill("bad range")
            page.get_by_placeholder("stock_code").fill("600519")
            page.get_by_placeholder("entry_min").fill("12")
            page.get_by_placeholder("entry_max").fill("10")
            page.get_by_placeholder("entry_max").press("Tab")
            page.get_by_role("button", name="Create task").click()
            page.locator(".error-entry_min").get_by_text("must not exceed entry_max").wait_for(timeout=20_000)
            assert len(control_plane(settings).list_tasks()) == before

            # A trigger of the running day shows in the notifications.
            page.locator(".bk-tab", has_text="Notifications").click()
            rows = page.locator(".notifications-table .tabulator-row")
            wait_for(lambda: rows.count() > 0, timeout=60)

            # The Live view of the task that fired most: candles, levels and trigger markers.
            fired = control_plane(settings).list_tasks().sort_values(["fires_today", "task_id"],
                                                                      ascending=[False, True])
            task_id = int(fired["task_id"].iloc[0])
            page.locator(".bk-tab", has_text="Live").click()
            chooser = page.locator(".live-task select")
            value = chooser.locator("option", has_text=f"{task_id} ·").first.get_attribute("value")
            chooser.select_option(value=value)
            page.locator(".live-caption").get_by_text(re.compile(r"\b[1-9]\d* triggers")).wait_for(timeout=30_000)
            # the chart follows the day until MA20 and BOLL have warmed up
            wait_for(lambda: shown_bars(page) >= SHOWN_BARS, timeout=60)
            page.add_style_tag(content=".wb-toasts { display: none !important; }")  # the toasts would cover the chart
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
        except BaseException:
            page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "dashboard-failure.png"))
            raise
        finally:
            browser.close()
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    assert sockets and all(urlparse(s).hostname == "127.0.0.1" for s in sockets), sockets
