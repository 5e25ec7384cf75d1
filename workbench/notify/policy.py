"""Which channels an alert goes to and when: the task's channel list, keyword filter and quiet hours. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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


DIGEST_NAMED = 5  # stocks named in a scan digest's title; the message lists them all


def stock_list(stocks: Sequence[Mapping[str, Any]]) -> str:
    """A scan burst's stocks as one line, strongest first: '宁德时代 300750.SZ 10.80; 浦发银行 600000.SH 10.30'."""
    return "; ".join(f"{s['name']} {s['code']} {s['price']:.2f}" for s in stocks)


def scan_digest(task_name: str, lead: dict[str, Any], fires: Sequence[Mapping[str, Any]],
                scores: Sequence[float]) -> tuple[str, str, dict[str, Any]]:
    """The title, message and alert of a scan's burst (``fires`` ranked, strongest first, the lead's alert first):
    '3 只股票 close crosses above SMA(20): 平安银行 000001.SZ、...'. The alert keeps the lead's fields (its trigger
    id keys the notification) and lists every stock with its price and the rule's value under ``stocks``."""
    stocks = [{"trigger_id": f["trigger_id"], "code": f["code"], "name": f["alert"]["name"],
               "price": round(float(f["price"]), 4), "value": None if not np.isfinite(v) else round(float(v), 4)}
              for f, v in zip(fires, scores, strict=True)]
    condition = lead["condition"]
    named = "、".join(f"{s['name']} {s['code']}" for s in stocks[:DIGEST_NAMED])
    more = f" 等 {len(stocks)} 只" if len(stocks) > DIGEST_NAMED else ""
    title = f"{len(stocks)} 只股票 {condition}: {named}{more}"
    message = (f"{task_name}: {len(stocks)} 只股票 {condition} at {lead['ts'][:19].replace('T', ' ')}: "
               f"{stock_list(stocks)}")
    alert = {**lead, "name": f"{len(stocks)} 只股票", "code": "", "title": title, "stocks": stocks}
    return title, message, alert


def system_alert(*, key: str, kind: str, subject: str, condition: str, ts: dt.datetime,
                 dashboard_url: str) -> dict[str, Any]:
    """An alert about the workbench itself (a stale feed), in the same schema: no task, no stock, no price."""
    return {
        "trigger_id": key, "task_id": 0, "task_name": "system", "code": "", "name": subject, "rule": kind,
        "condition": condition, "price": None, "ts": ts.astimezone(TZ).isoformat(), "late": False,
        "url": f"{dashboard_url.rstrip('/')}/dashboard?view=health",
    }
