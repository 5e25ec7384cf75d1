"""The REST routes: tasks, bulk commands, the monitor service, notifications, holidays, the market overview,
watchlists, the audit log and health.

Each route checks the shape of its input (pydantic: a bad field is a 422 naming it before anything runs), calls the
control plane in a worker thread (the project's ValidationError / NotFound become 422 / 404 with nothing changed),
tells the notifier when a command may have appended events, and answers JSON.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from workbench.api.common import ACTOR_HEADER, ApiContext, plain, records
from workbench.control import ACTORS, Service
from workbench.control.tasks import OVERVIEW_COLUMNS, TaskOverview
from workbench.errors import ValidationError
from workbench.market import normalize_code
from workbench.models import MonitorTask
from workbench.safetext import check_text
from workbench.store.tasks import TaskFilter

_EXAMPLE = {"task_name": "breakout", "stock_code": "600000", "rule": "close crosses_above sma(20)"}
Actor = Annotated[str | None, Header(alias=ACTOR_HEADER, description="who asks, for the audit log: cli, notebook, "
                                                                     "dashboard, schedule or api (the default)")]


class FilterBody(BaseModel):
    """Which tasks a bulk command means; every given criterion must hold, none given: all tasks."""

    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(default=None, description="running or stopped")
    codes: list[str] = Field(default_factory=list, description="stock codes in any spelling (600000, sh600000)")
    name: str | None = Field(default=None, description="a case-insensitive part of the task name")
    task_ids: list[int] = Field(default_factory=list)


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trading_date: dt.date | None = Field(default=None, description="the day to monitor (default today)")
    speed: float | None = Field(default=None, description="simulated clock speed (a replayed day); 0: flat out")
    mode: str | None = Field(default=None, description="auto, prefect or local (default: the server's setting)")
    wait: float | None = Field(default=None, ge=0, le=600, description="seconds to wait for the loop to report")


class StopBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float | None = Field(default=None, ge=0, le=600,
                                  description="seconds the loop has to honour the stop before its run is cancelled")


class ReadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notification_ids: list[int] | None = Field(default=None, description="the notifications to mark read")
    all: bool = Field(default=False, description="mark every unread in-app notification read instead")


class DatesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dates: list[str] = Field(description="days YYYY-MM-DD, or ranges YYYY-MM-DD..YYYY-MM-DD")


class WatchlistBody(BaseModel):
    """A new list: of the given codes, of a board or group of the universe, or of a screen's stocks (one, or none
    for an empty list)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the list's name (unique, no '/')")
    codes: list[str] = Field(default_factory=list, description="stock codes in any spelling (600519, sh600519)")
    group: str | None = Field(default=None, description="main, chinext, star, beijing or st")
    screen: str | None = Field(default=None, description="a rule that holds on the latest daily bar")


class CodesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    codes: list[str] = Field(description="stock codes in any spelling (600519, sh600519, 600519.SH)")


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    new_name: str = Field(description="the list's new name")


class ImportBody(BaseModel):
    """A file of another terminal: its bytes as base64 (``content_base64``) or its text (``text``), not both."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="the new list's name")
    format: str = Field(default="auto", description="tdx, ths, eastmoney, csv or auto")
    content_base64: str | None = Field(default=None, description="the file's bytes, base64")
    text: str | None = Field(default=None, description="the file's text (UTF-8)")
    filename: str | None = Field(default=None, description="the file's name: its extension helps auto")

    def content(self) -> bytes:
        """The file's bytes; a body with neither or both forms is refused by ``content``."""
        import base64
        import binascii

        if (self.content_base64 is None) == (self.text is None):
            raise ValidationError("content", "give the file as content_base64 or as text (one of them)")
        if self.text is not None:
            return self.text.encode("utf-8")
        try:
            return base64.b64decode(self.content_base64 or "", validate=True)
        except binascii.Error as exc:
            raise ValidationError("content_base64", f"not base64 ({exc})") from None


_MEDIA_TYPES = {"tdx": "text/plain", "ths": "text/plain; charset=gbk", "eastmoney": "text/csv; charset=gbk",
                "csv": "text/csv; charset=utf-8"}


def watchlist_json(row: dict[str, Any]) -> dict[str, Any]:
    """A list (or its summary) as JSON: times as ISO text, members as objects."""
    out = {k: plain(v) for k, v in row.items() if k != "members"}
    if "members" in row:
        out["members"] = [{k: plain(v) for k, v in m.items()} for m in row["members"]]
    return out


def task_json(task: MonitorTask) -> dict[str, Any]:
    return task.model_dump(mode="json")


def overview_json(frame: Any) -> list[dict[str, Any]]:
    """The task listing: each task as :func:`task_json` gives it, with what the monitor did with it."""
    return [{**task_json(row.task), **{k: plain(getattr(row, k)) for k in OVERVIEW_COLUMNS}}
            for row in TaskOverview.rows(frame)]


def task_filter(status_: str | None, codes: list[str], name: str | None, task_ids: list[int]) -> TaskFilter:
    """A TaskFilter from request input; a bad value is named by its parameter (``codes``, ``name``)."""
    wanted = [part.strip() for item in codes for part in item.split(",") if part.strip()]
    canonical = []
    for code in wanted:
        try:
            canonical.append(normalize_code(check_text("codes", code)))
        except ValidationError as exc:
            raise ValidationError("codes", exc.problem) from None
    if status_ is not None and status_ not in ("running", "stopped"):
        raise ValidationError("status", f"must be running or stopped, got {status_!r}")
    return TaskFilter(status=status_, codes=tuple(canonical),
                      name=None if name is None else check_text("name", name), task_ids=tuple(task_ids))


def health_router(context: ApiContext) -> APIRouter:
    """``/health``, open without the token: whether the server answers and the monitor is healthy, in words."""
    api = APIRouter(tags=["health"])

    @api.get("/health", summary="Liveness and the monitor's health (no token needed)")
    async def health() -> dict[str, Any]:
        report = (await context.feed.blocking(context.service.status)).to_json()
        return {key: report[key] for key in ("healthy", "state", "problems", "warnings", "tasks_running")}

    return api


def known_actor(actor: Actor = None) -> None:
    """Every route refuses an actor the audit log does not know, reads too: a client's typo shows at once."""
    if actor and actor not in ACTORS:
        raise ValidationError("actor", f"{ACTOR_HEADER} must be one of {', '.join(ACTORS)}, got {actor!r}")


def router(context: ApiContext) -> APIRouter:  # noqa: C901 - one closure per route, each a few lines
    api = APIRouter(dependencies=[Depends(known_actor)])
    feed = context.feed

    async def command(service: Service, fn: Any, *args: Any) -> Any:
        """Run a command in a worker thread, then wake the streams: commands append events (task started ...)."""
        try:
            return await feed.blocking(fn, *args)
        finally:
            feed.notifier.notify()

    def svc(actor: str | None) -> Service:
        return context.service_for(actor)

    # -- tasks ----------------------------------------------------------------------------------------------------
    @api.get("/tasks", tags=["tasks"], summary="List tasks with what the monitor did with them")
    async def list_tasks(status_: Annotated[str | None, Query(alias="status", description="running or stopped")]
                         = None,
                         codes: Annotated[list[str], Query(description="stock codes (repeat, or comma-separated)")]
                         = [],  # noqa: B006 - FastAPI copies defaults
                         name: Annotated[str | None, Query(description="part of the task name")] = None,
                         ) -> dict[str, Any]:
        flt = task_filter(status_, codes, name, [])
        frame = await feed.blocking(context.service.list_tasks, flt)
        return {"items": overview_json(frame), "total": len(frame)}

    @api.get("/tasks/{task_id}", tags=["tasks"], summary="One task")
    async def get_task(task_id: int) -> dict[str, Any]:
        return task_json(await feed.blocking(context.service.get_task, task_id))

    @api.post("/tasks", tags=["tasks"], status_code=status.HTTP_201_CREATED, summary="Create a task (stopped "
              "unless start=true); a bad field is named and nothing is written")
    async def create_task(spec: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])], actor: Actor = None,
                          start: bool = False) -> dict[str, Any]:
        service = svc(actor)
        return task_json(await command(service, service.create_task, spec, start))

    @api.patch("/tasks/{task_id}", tags=["tasks"], summary="Edit fields of a task (a running one is stopped "
               "first, and started again only with restart=true)")
    async def update_task(task_id: int, changes: Annotated[dict[str, Any], Body(examples=[{"entry_max": 12.5}])],
                          actor: Actor = None, restart: bool = False) -> dict[str, Any]:
        service = svc(actor)
        return task_json(await command(service, service.update_task, task_id, changes, restart))

    @api.delete("/tasks/{task_id}", tags=["tasks"], summary="Delete a task; its triggers and notifications stay")
    async def delete_task(task_id: int, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return task_json(await command(service, service.delete_task, task_id))

    async def set_one(task_id: int, actor: str | None, start: bool) -> dict[str, Any]:
        service = svc(actor)
        changed = await command(service, service.start_tasks if start else service.stop_tasks, [task_id])
        task = await feed.blocking(service.get_task, task_id)
        return {"changed": task_id in changed, "task": task_json(task)}

    @api.post("/tasks/{task_id}/start", tags=["tasks"], summary="Start one task (a running one is left as it is)")
    async def start_task(task_id: int, actor: Actor = None) -> dict[str, Any]:
        return await set_one(task_id, actor, True)

    @api.post("/tasks/{task_id}/stop", tags=["tasks"], summary="Stop one task")
    async def stop_task(task_id: int, actor: Actor = None) -> dict[str, Any]:
        return await set_one(task_id, actor, False)

    async def bulk(body: FilterBody | None, actor: str | None, start: bool) -> dict[str, Any]:
        body = body or FilterBody()
        flt = task_filter(body.status, body.codes, body.name, body.task_ids)
        service = svc(actor)
        result = await command(service, service.start_all if start else service.pause_all, flt)
        return dict(result.to_json())

    @api.post("/tasks/start-all", tags=["tasks"], summary="Start every task the filter matches, in one go")
    async def start_all(body: Annotated[FilterBody | None, Body()] = None, actor: Actor = None) -> dict[str, Any]:
        return await bulk(body, actor, True)

    @api.post("/tasks/pause-all", tags=["tasks"], summary="Stop every task the filter matches, in one go")
    async def pause_all(body: Annotated[FilterBody | None, Body()] = None, actor: Actor = None) -> dict[str, Any]:
        return await bulk(body, actor, False)

    # -- the monitor service -------------------------------------------------------------------------------------
    @api.post("/service/start", tags=["service"], summary="Start the monitor (idempotent: a live run is returned)")
    async def start_service(body: Annotated[StartBody | None, Body()] = None, actor: Actor = None) -> dict[str, Any]:
        body = body or StartBody()
        service = svc(actor)
        run = await command(service, lambda: service.start_service(body.trading_date, body.speed, body.wait,
                                                                   body.mode))
        return {"run": run.to_json()}

    @api.post("/service/stop", tags=["service"], summary="Stop the monitor within one tick (idempotent)")
    async def stop_service(body: Annotated[StopBody | None, Body()] = None, actor: Actor = None) -> dict[str, Any]:
        body = body or StopBody()
        service = svc(actor)
        run = await command(service, service.stop_service, body.timeout)
        return {"run": None if run is None else run.to_json()}

    @api.get("/service/status", tags=["service"], summary="What `workbench service status` reports")
    async def service_status() -> dict[str, Any]:
        return (await command(context.service, context.service.status)).to_json()  # may announce (un)health

    # -- notifications and the audit log -------------------------------------------------------------------------
    @api.get("/notifications", tags=["notifications"], summary="The in-app history, newest first, a page at a time")
    async def notifications(page: int = 1, page_size: int = 50, task_id: int | None = None,
                            unread: bool = False) -> dict[str, Any]:
        frame, total = await feed.blocking(context.service.notifications, page, page_size, task_id, unread)
        return {"items": records(frame), "total": total, "page": page, "page_size": page_size,
                "pages": max(1, -(-total // page_size))}

    @api.post("/notifications/read", tags=["notifications"], summary="Mark notifications read (or all unread)")
    async def mark_read(body: ReadBody, actor: Actor = None) -> dict[str, Any]:
        if body.all == (body.notification_ids is not None):
            raise ValidationError("notification_ids", "name the notifications to mark read, or set all to true "
                                                      "(not both)")
        service = svc(actor)
        return {"changed": await command(service, service.mark_read, None if body.all else body.notification_ids)}

    # -- the calendar's stored holidays ---------------------------------------------------------------------------
    @api.get("/calendar/holidays", tags=["calendar"], summary="Holidays entered beyond the exchange calendar")
    async def holidays() -> dict[str, Any]:
        return {"items": [{k: plain(v) for k, v in row.items()}
                          for row in await feed.blocking(context.service.holidays)]}

    @api.post("/calendar/holidays", tags=["calendar"], summary="Enter closure days (休市安排) the calendar lacks")
    async def add_holidays(body: DatesBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return {"dates": [d.isoformat() for d in await command(service, service.add_holidays, body.dates)]}

    @api.post("/calendar/holidays/remove", tags=["calendar"], summary="Remove entered closure days")
    async def remove_holidays(body: DatesBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return {"dates": [d.isoformat() for d in await command(service, service.remove_holidays, body.dates)]}

    # -- the market overview ------------------------------------------------------------------------------------
    @api.get("/market/overview", tags=["market"],
             summary="The indexes and the market's breadth (涨跌家数, 涨停, 炸板率)")
    async def market_overview(trading_date: Annotated[dt.date | None, Query(
            description="the trading day (default: the latest stored)")] = None) -> dict[str, Any]:
        return await feed.blocking(context.service.market_overview, trading_date)

    # -- watchlists ---------------------------------------------------------------------------------------------
    @api.get("/watchlists", tags=["watchlists"], summary="Every watchlist: size, who created and changed it")
    async def list_watchlists() -> dict[str, Any]:
        return {"items": [watchlist_json(w) for w in await feed.blocking(context.service.watchlists)]}

    @api.post("/watchlists", tags=["watchlists"], status_code=status.HTTP_201_CREATED,
              summary="Create a watchlist of codes, a board or group (main, chinext, star, beijing, st) or a screen")
    async def create_watchlist(body: WatchlistBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return watchlist_json(await command(service, service.create_watchlist, body.name, body.codes,
                                            body.group, body.screen))

    @api.post("/watchlists/import", tags=["watchlists"], status_code=status.HTTP_201_CREATED,
              summary="Create a watchlist from a 通达信, 同花顺, 东方财富 or CSV file")
    async def import_watchlist(body: ImportBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return watchlist_json(await command(service, service.import_watchlist, body.name, body.content(),
                                            body.format, body.filename))

    @api.get("/watchlists/{name}", tags=["watchlists"], summary="One watchlist with its members in order")
    async def get_watchlist(name: str) -> dict[str, Any]:
        return watchlist_json(await feed.blocking(context.service.watchlist, name))

    @api.get("/watchlists/{name}/export", tags=["watchlists"], summary="A watchlist as a file of another terminal")
    async def export_watchlist(name: str, format_: Annotated[str, Query(
            alias="format", description="tdx, ths, eastmoney or csv")] = "csv") -> Response:
        from urllib.parse import quote

        from workbench.watchlists import EXTENSIONS

        data = await feed.blocking(context.service.export_watchlist, name, format_)
        filename = quote(f"{name}{EXTENSIONS[format_]}", safe="")
        return Response(data, media_type=_MEDIA_TYPES[format_],
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"})

    @api.delete("/watchlists/{name}", tags=["watchlists"], summary="Delete a watchlist; returns what it held")
    async def delete_watchlist(name: str, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return watchlist_json(await command(service, service.delete_watchlist, name))

    @api.post("/watchlists/{name}/rename", tags=["watchlists"], summary="Rename a watchlist")
    async def rename_watchlist(name: str, body: RenameBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return watchlist_json(await command(service, service.rename_watchlist, name, body.new_name))

    @api.post("/watchlists/{name}/add", tags=["watchlists"], summary="Append stocks to a watchlist")
    async def add_to_watchlist(name: str, body: CodesBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return {"added": await command(service, service.add_to_watchlist, name, body.codes)}

    @api.post("/watchlists/{name}/remove", tags=["watchlists"], summary="Remove stocks from a watchlist (all or "
              "none)")
    async def remove_from_watchlist(name: str, body: CodesBody, actor: Actor = None) -> dict[str, Any]:
        service = svc(actor)
        return {"removed": await command(service, service.remove_from_watchlist, name, body.codes)}

    @api.get("/audit", tags=["audit"], summary="The audit log of commands, newest first")
    async def audit(limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
                    task_id: int | None = None) -> dict[str, Any]:
        frame = await feed.blocking(context.service.audit_log, limit, task_id)
        return {"items": records(frame, json_columns=("detail",))}

    return api
