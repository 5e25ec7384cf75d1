"""What the API's routes share: the context they run in, the token check, who is asking, and JSON from frames."""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workbench.api.errors import Unauthorized
from workbench.api.feed import EventFeed
from workbench.control import Service

ACTOR_HEADER = "X-Workbench-Actor"


@dataclass(frozen=True)
class ApiContext:
    """The control plane every route calls, and the feed that runs blocking calls and follows the event log."""

    service: Service
    feed: EventFeed

    def service_for(self, actor: str | None) -> Service:
        """The control plane acting for the client that says who it is (``X-Workbench-Actor: cli``), so the audit
        log names it; the service's own actor (``api``) otherwise."""
        return self.service if not actor else self.service.acting_as(actor)


class TokenCheck:
    """Compares a bearer token in constant time; with no token configured every request passes."""

    def __init__(self, token: str | None) -> None:
        self._token = None if token is None else token.encode()

    @property
    def required(self) -> bool:
        return self._token is not None

    def check_header(self, header: str | None) -> None:
        """Raise Unauthorized unless ``header`` is ``Bearer <the token>`` (the WebSocket handshake's check)."""
        if self._token is None:
            return
        scheme, _, value = (header or "").strip().partition(" ")
        self.check(value.strip() if scheme.lower() == "bearer" and value.strip() else None)

    def check(self, presented: str | None) -> None:
        if self._token is None:
            return
        if presented is None:
            raise Unauthorized("send the server's token as 'Authorization: Bearer <token>'")
        if not hmac.compare_digest(presented.encode(), self._token):
            raise Unauthorized("the token is not the server's token")


def plain(value: Any) -> Any:
    """A cell of a frame as JSON: datetimes as ISO text, NaN / NaT / NA as null, numpy scalars as Python's."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    return value


def records(frame: pd.DataFrame, json_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    """A frame's rows as JSON objects; ``json_columns`` hold JSON text that is parsed."""
    parsed = set(json_columns)
    out = []
    for row in frame.to_dict("records"):
        item = {}
        for key, value in row.items():
            cell = plain(value)
            item[str(key)] = json.loads(cell) if key in parsed and isinstance(cell, str) else cell
        out.append(item)
    return out
