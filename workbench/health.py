"""What makes the running monitor unhealthy, in words. Pure: the loop and ``service status`` both judge with it."""

from __future__ import annotations

from typing import Any

BEHIND_INTERVALS = 2.0  # a loop more than two poll intervals behind the clock is falling behind
SILENT_INTERVALS = 20.0  # no report for this many poll intervals (of real time) means the loop is gone or stuck
MIN_SILENCE_SECONDS = 30.0


def loop_problems(health: dict[str, Any], poll_interval: float) -> dict[str, str]:
    """Problems the loop can see in itself, by kind (behind, store, feed, calendar), each in words."""
    problems: dict[str, str] = {}
    lag = health.get("tick_lag_seconds")
    waiting = health.get("waiting")  # waiting for the next session: caught up, whatever the last tick's lag was
    if lag is not None and lag > BEHIND_INTERVALS * poll_interval and not waiting:
        problems["behind"] = (f"behind the clock by {lag:.1f} s (more than {BEHIND_INTERVALS:g} poll intervals of "
                        f"{poll_interval:g} s)")
    buffered = health.get("buffered_ticks") or 0
    if buffered:
        problems["store"] = f"{buffered} tick(s) buffered in memory: the database file is locked by another process"
    feed = health.get("feed") or {}
    if feed.get("stale"):
        problems["feed"] = f"feed {feed.get('name', '?')}: no fresh quotes for {feed.get('staleness') or 0:.0f} s"
    if health.get("calendar_warning"):
        problems["calendar"] = str(health["calendar_warning"])
    return problems


def silence_limit(poll_interval: float, speed: float | None) -> float:
    """Wall seconds without a report after which a running loop counts as gone: scaled by the clock's speed."""
    wall_interval = poll_interval / speed if speed else poll_interval
    return max(MIN_SILENCE_SECONDS, SILENT_INTERVALS * wall_interval)
