"""The control plane through a running workbench server's API, for the CLI and the tasks notebook.

While a server owns the database no other process may open the file, so a command from the CLI or a notebook goes
to the server's HTTP API instead. ``RemoteService`` has the methods of :class:`workbench.control.Service` that those
clients call, with the same arguments, results and errors (a refused field is the same ``ValidationError``), so the
callers do not care which one they hold. ``control_plane`` picks: the server's when one is advertised, else the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd

from workbench.config import Settings
from workbench.control import BulkResult, Service, ServiceStatus
from workbench.errors import NotFound, OperationalError, StoreBusy, ValidationError, WorkbenchError
from workbench.models import MonitorTask
from workbench.store.service import ServiceRun
from workbench.store.tasks import TaskFilter

PREFIX = "/api/v1"
_ROW_JSON = ("quant_config", "alert", "rule")  # stored as JSON text: the listing frame keeps the store's shape
_TIMES = ("created_at", "updated_at", "last_evaluated", "last_trigger")


class ServerUnreachable(OperationalError):
    """The advertised server did not answer: it stopped or was killed. One line for the user."""


def control_plane(settings: Settings, actor: str = "cli") -> Service | RemoteService:
    """The server's control plane when a live server advertises itself beside the database, else the file's own."""
    from workbench.advert import read_advert

    advert = read_advert(settings.db_path)
    if advert is None:
        return Service(settings, actor=actor)
    return RemoteService(advert.api_url, advert.token, actor=actor, timeout=settings.service_start_wait + 30)


class RemoteService:
    """:class:`Service`'s commands over HTTP, as ``actor`` (the audit log names who asked)."""

    def __init__(self, url: str, token: str, actor: str = "cli", timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.actor = actor
        self._headers = {"Authorization": f"Bearer {token}", "X-Workbench-Actor": actor}
        self._timeout = timeout

    # -- transport ------------------------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        return self.request(method, path, body, params).json()

    def request(self, method: str, path: str, body: Any = None,
                params: Mapping[str, Any] | None = None) -> httpx.Response:
        """The API's answer to one request (a success: errors are raised as Service raises them)."""
        try:
            with httpx.Client(base_url=self.url, headers=self._headers, timeout=self._timeout) as client:
                response = client.request(method, PREFIX + path, json=body, params=params)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"the workbench server at {self.url} does not answer ({type(exc).__name__}); "
                                    "start it again (`workbench server`) or stop it for good") from None
        if response.status_code < 400:
            return response
        raise _error(response) from None

    # -- tasks ----------------------------------------------------------------------------------------------------
    def list_tasks(self, flt: TaskFilter | None = None) -> pd.DataFrame:
        flt = flt or TaskFilter()
        params: dict[str, Any] = {"codes": list(flt.codes)}
        if flt.status is not None:
            params["status"] = flt.status
        if flt.name is not None:
            params["name"] = flt.name
        items = self.call("GET", "/tasks", params=params)["items"]
        if flt.task_ids:
            items = [item for item in items if item["task_id"] in set(flt.task_ids)]
        return _listing(items)

    def get_task(self, task_id: int) -> MonitorTask:
        return MonitorTask.model_validate(self.call("GET", f"/tasks/{task_id}"))

    def create_task(self, spec: Mapping[str, Any] | MonitorTask, start: bool = False) -> MonitorTask:
        body = spec.model_dump(mode="json", exclude_none=True) if isinstance(spec, MonitorTask) else dict(spec)
        return MonitorTask.model_validate(self.call("POST", "/tasks", _jsonable(body), {"start": start}))

    def update_task(self, task_id: int, changes: Mapping[str, Any], restart: bool = False) -> MonitorTask:
        return MonitorTask.model_validate(self.call("PATCH", f"/tasks/{task_id}", _jsonable(dict(changes)),
                                                     {"restart": restart}))

    def delete_task(self, task_id: int) -> MonitorTask:
        return MonitorTask.model_validate(self.call("DELETE", f"/tasks/{task_id}"))

    def start_tasks(self, task_ids: list[int]) -> list[int]:
        return self._each(task_ids, "start")

    def stop_tasks(self, task_ids: list[int]) -> list[int]:
        return self._each(task_ids, "stop")

    def _each(self, task_ids: list[int], action: str) -> list[int]:
        """Several ids in one command, as Service does it (all or none): the bulk route with an id filter."""
        if not task_ids:
            raise ValidationError("task_ids", "name at least one task")
        if len(task_ids) == 1:
            answer = self.call("POST", f"/tasks/{task_ids[0]}/{action}")
            return [task_ids[0]] if answer["changed"] else []
        missing = sorted(set(task_ids) - set(self.list_tasks()["task_id"].astype(int)))
        if missing:
            raise NotFound(f"task_id: no task {missing[0]}")
        return self._bulk("start-all" if action == "start" else "pause-all",
                          TaskFilter(task_ids=tuple(task_ids))).changed

    def start_all(self, flt: TaskFilter | None = None) -> BulkResult:
        return self._bulk("start-all", flt or TaskFilter())

    def pause_all(self, flt: TaskFilter | None = None) -> BulkResult:
        return self._bulk("pause-all", flt or TaskFilter())

    def _bulk(self, route: str, flt: TaskFilter) -> BulkResult:
        body = {"status": flt.status, "codes": list(flt.codes), "name": flt.name, "task_ids": list(flt.task_ids)}
        answer = self.call("POST", f"/tasks/{route}", body)
        return BulkResult(answer["action"], list(answer.get("matched_ids", [])), list(answer["task_ids"]))

    def audit_log(self, limit: int = 50, task_id: int | None = None) -> pd.DataFrame:
        params: dict[str, Any] = {"limit": limit} | ({} if task_id is None else {"task_id": task_id})
        frame = pd.DataFrame(self.call("GET", "/audit", params=params)["items"])
        if "ts" in frame:
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
        if "detail" in frame:
            frame["detail"] = [None if d is None else json.dumps(d) for d in frame["detail"]]
        return frame

    # -- the service ----------------------------------------------------------------------------------------------
    def start_service(self, trading_date: dt.date | None = None, speed: float | None = None,
                      wait: float | None = None, mode: str | None = None) -> ServiceRun:
        body = {"trading_date": None if trading_date is None else trading_date.isoformat(), "speed": speed,
                "wait": wait, "mode": mode}
        return _run(self.call("POST", "/service/start", body)["run"])

    def stop_service(self, timeout: float | None = None) -> ServiceRun | None:
        run = self.call("POST", "/service/stop", {"timeout": timeout})["run"]
        return None if run is None else _run(run)

    def status(self) -> ServiceStatus:
        return ServiceStatus.from_json(self.call("GET", "/service/status"))

    # -- the calendar ---------------------------------------------------------------------------------------------
    def holidays(self) -> list[dict[str, Any]]:
        rows = list(self.call("GET", "/calendar/holidays")["items"])
        for row in rows:
            row["date"] = dt.date.fromisoformat(row["date"])
            row["added_at"] = None if row.get("added_at") is None else dt.datetime.fromisoformat(row["added_at"])
        return rows

    def add_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        return _dates(self.call("POST", "/calendar/holidays", {"dates": _date_list(dates)})["dates"])

    def remove_holidays(self, dates: Sequence[str | dt.date] | str) -> list[dt.date]:
        return _dates(self.call("POST", "/calendar/holidays/remove", {"dates": _date_list(dates)})["dates"])

    # -- the market -------------------------------------------------------------------------------------------------
    def market_overview(self, trading_date: dt.date | None = None) -> dict[str, Any]:
        query = "" if trading_date is None else f"?trading_date={trading_date.isoformat()}"
        return dict(self.call("GET", f"/market/overview{query}"))

    # -- watchlists -----------------------------------------------------------------------------------------------
    def watchlists(self) -> list[dict[str, Any]]:
        return [_watchlist(row) for row in self.call("GET", "/watchlists")["items"]]

    def watchlist(self, name: str) -> dict[str, Any]:
        return _watchlist(self.call("GET", _named(name)))

    def create_watchlist(self, name: str, codes: Sequence[str] | None = None, group: str | None = None,
                         screen: str | None = None) -> dict[str, Any]:
        body = {"name": name, "codes": list(codes or []), "group": group, "screen": screen}
        return _watchlist(self.call("POST", "/watchlists", body))

    def import_watchlist(self, name: str, content: bytes, fmt: str = "auto",
                         filename: str | None = None) -> dict[str, Any]:
        body = {"name": name, "format": fmt, "content_base64": base64.b64encode(content).decode("ascii"),
                "filename": filename}
        return _watchlist(self.call("POST", "/watchlists/import", body))

    def export_watchlist(self, name: str, fmt: str) -> bytes:
        return self.request("GET", _named(name) + "/export", params={"format": fmt}).content

    def rename_watchlist(self, name: str, new_name: str) -> dict[str, Any]:
        return _watchlist(self.call("POST", _named(name) + "/rename", {"new_name": new_name}))

    def add_to_watchlist(self, name: str, codes: Sequence[str]) -> list[str]:
        return list(self.call("POST", _named(name) + "/add", {"codes": list(codes)})["added"])

    def remove_from_watchlist(self, name: str, codes: Sequence[str]) -> list[str]:
        return list(self.call("POST", _named(name) + "/remove", {"codes": list(codes)})["removed"])

    def delete_watchlist(self, name: str) -> dict[str, Any]:
        return _watchlist(self.call("DELETE", _named(name)))


def _named(name: str) -> str:
    """The path of a list: its name quoted whole, so ``?``, ``#`` and spaces stay in the name."""
    return "/watchlists/" + quote(str(name), safe="")


def _watchlist(row: dict[str, Any]) -> dict[str, Any]:
    """A list as Service returns it: times as datetimes again."""
    out = {**row, **{k: _time(row.get(k)) for k in ("created_at", "updated_at") if k in row}}
    if "members" in row:
        out["members"] = [{**m, "added_at": _time(m.get("added_at"))} for m in row["members"]]
    return out


def _time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)


def _error(response: httpx.Response) -> WorkbenchError:
    """The API's error answer as the error Service would have raised."""
    try:
        problems = response.json().get("detail") or []
    except ValueError:
        problems = []
    first = problems[0] if problems and isinstance(problems[0], dict) else {}
    field, message = first.get("field"), str(first.get("message") or response.text[:200])
    if response.status_code == 422:
        return ValidationError(field or "request", message)
    if response.status_code == 404:
        return NotFound(f"{field}: {message}" if field else message)
    if response.status_code == 503:
        return StoreBusy(message)
    return OperationalError(f"the workbench server answered {response.status_code}: {message}")


def _listing(items: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{**item, **{key: None if item.get(key) is None else json.dumps(item[key]) for key in _ROW_JSON}}
            for item in items]
    frame = pd.DataFrame(rows)
    for key in _TIMES:
        if key in frame:
            frame[key] = pd.to_datetime(frame[key], utc=True, format="ISO8601")
    if "fires_today" in frame:
        frame["fires_today"] = frame["fires_today"].fillna(0).astype(int)
    if frame.empty:
        frame = pd.DataFrame(columns=["task_id", "last_evaluated", "last_trigger", "fires_today"])
    return frame


def _run(data: Mapping[str, Any]) -> ServiceRun:
    return ServiceRun.from_json(data)


def _jsonable(body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(body, default=str))


def _date_list(dates: Sequence[str | dt.date] | str) -> list[str]:
    return [dates] if isinstance(dates, str) else [str(d) for d in dates]


def _dates(values: list[str]) -> list[dt.date]:
    return [dt.date.fromisoformat(v) for v in values]
