"""Which channels an alert goes to and when: the task's channel list, keyword filter and quiet hours. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from workbench.calendar import TZ
from workbench.rules.model import Alert

PAYLOAD_SCHEMA = "workbench.alert/1"


def channels_for(alert: Alert, configured: Sequence[str], text: str) -> list[str]:
    """The configured channels this alert goes to; none when the task's keywords are not in the text."""
    wanted = [c for c in configured if alert.channels is None or c in alert.channels]
    if alert.keywords and not any(k.lower() in text.lower() for k in alert.keywords):
        return []
    return wanted


def hold_until(alert: Alert, ts: dt.datetime) -> dt.datetime:
    """When channel delivery may start: ``ts``, or the end of the quiet window ``ts`` falls in."""
    local = ts.astimezone(TZ)
    for start, end in alert.quiet_hours:
        inside = start <= local.time() < end if start <= end else (local.time() >= start or local.time() < end)
        if inside:
            day = local.date() if local.time() < end else local.date() + dt.timedelta(days=1)
            return dt.datetime.combine(day, end, tzinfo=TZ)
    return ts


def alert_payload(*, trigger_id: str, task_id: int, task_name: str, code: str, name: str, rule: str,
                  condition: str, price: float, ts: dt.datetime, late: bool, dashboard_url: str) -> dict[str, Any]:
    """One alert in the stable webhook schema (``workbench.alert/1``)."""
    return {
        "trigger_id": trigger_id, "task_id": task_id, "task_name": task_name, "code": code, "name": name,
        "rule": rule, "condition": condition, "price": round(price, 4), "ts": ts.astimezone(TZ).isoformat(),
        "late": late, "url": f"{dashboard_url.rstrip('/')}/dashboard?task={task_id}",
    }


def system_alert(*, key: str, kind: str, subject: str, condition: str, ts: dt.datetime,
                 dashboard_url: str) -> dict[str, Any]:
    """An alert about the workbench itself (a stale feed), in the same schema: no task, no stock, no price."""
    return {
        "trigger_id": key, "task_id": 0, "task_name": "system", "code": "", "name": subject, "rule": kind,
        "condition": condition, "price": None, "ts": ts.astimezone(TZ).isoformat(), "late": False,
        "url": f"{dashboard_url.rstrip('/')}/dashboard?view=health",
    }
