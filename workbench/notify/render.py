"""Alerts as messages: one alert, or a digest of a burst. Pure."""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from typing import Any

from workbench.notify.message import Message
from workbench.notify.policy import PAYLOAD_SCHEMA, stock_list


def _line(a: dict[str, Any]) -> str:
    late = " [late]" if a.get("late") else ""
    return (f"{_what(a)} at {a['ts'][:19].replace('T', ' ')} "
            f"(Asia/Shanghai){late} - task {a['task_name']} - {a['url']}")


def _what(a: dict[str, Any]) -> str:
    """'平安银行 000001.SZ close crosses above 10: price 10.05', or a scan's burst with each stock and price."""
    stocks = a.get("stocks")
    if stocks:
        return f"{a['name']} {a['condition']}: {stock_list(stocks)}"
    return f"{a['name']} {a['code']} {a['condition']}{_price(a)}"


def _html_stocks(a: dict[str, Any]) -> str:
    """A scan burst's stocks, strongest first, as a nested list."""
    stocks = a.get("stocks") or []
    rows = "".join(f"<li>{html.escape(s['name'])} {html.escape(s['code'])} {s['price']:.2f}</li>" for s in stocks)
    return f"<ol>{rows}</ol>" if rows else ""


def _price(a: dict[str, Any]) -> str:
    """': price 12.34', or nothing for a system alert, which has no price."""
    return "" if a.get("price") is None else f": price {a['price']:.2f}"


def render(alerts: Sequence[dict[str, Any]], keys: Sequence[str]) -> Message:
    """One message for one alert or a digest of several; the idempotency key names exactly the rows it carries, and
    each alert in the payload carries its own row's key, which no retry or digest changes."""
    if len(alerts) == 1:
        a = alerts[0]
        key = keys[0]
        title = a.get("title") or f"{a['name']} {a['code']}: {a['condition']}"
        kind = "alert"
    else:
        key = "digest:" + hashlib.sha256("|".join(keys).encode()).hexdigest()[:24]
        title = f"{len(alerts)} alerts: " + ", ".join(sorted({f"{a['name']} {a['code']}" for a in alerts})[:5])
        kind = "digest"
    text = "\n".join(_line(a) for a in alerts)
    items = "".join(
        f"<li><b>{html.escape(a['name'])} {html.escape(a['code'])}</b> {html.escape(a['condition'])}{_price(a)} "
        f"at {html.escape(a['ts'][:19].replace('T', ' '))}{' [late]' if a.get('late') else ''} "
        f"<a href=\"{html.escape(a['url'])}\">task {html.escape(str(a['task_name']))}</a>{_html_stocks(a)}</li>"
        for a in alerts)
    body = f"<ul>{items}</ul>"
    carried = [{**a, "idempotency_key": k} for a, k in zip(alerts, keys, strict=True)]  # each alert's own, stable key
    payload = {"schema": PAYLOAD_SCHEMA, "idempotency_key": key, "kind": kind, "alerts": carried}
    return Message(idempotency_key=key, title=title, text=text, html=body, payload=payload)
