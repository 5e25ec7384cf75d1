"""The event stream over HTTP: a WebSocket, Server-Sent Events as the fallback, and a plain page for pollers.

All three take ``channels`` (repeat it or separate by commas; ``events:tasks`` includes every ``events:task:{id}``,
``events:market`` every ``events:market:{code}``; none: every channel) and a cursor ``after`` (the last seq the
client has; SSE's ``Last-Event-ID`` wins over it). Each message is one event as JSON with its ``seq``:
``{"seq", "ts", "event_type", "channel", "version", "payload"}``. A client that reconnects from the last seq it got
misses nothing and gets nothing twice.

The WebSocket checks the token and its parameters before it accepts: a refusal is a plain HTTP answer (401, 422)
with the API's error JSON. It only sends; the server closes it with 1001 when it stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from workbench.api.common import ApiContext, TokenCheck
from workbench.api.errors import Unauthorized, error_body, problem, workbench_error
from workbench.api.feed import READ_LIMIT, Cursor, event_text, parse_cursor
from workbench.errors import ValidationError, WorkbenchError

Channels = Annotated[list[str], Query(description="channels to follow (repeat, or comma-separated); none: all")]
After = Annotated[str | None, Query(description="the last seq the client has (0 or none: from the beginning)")]


def cursor_of(channels: Channels = [], after: After = None,  # noqa: B006 - FastAPI copies defaults
              last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None) -> Cursor:
    """Checked before the stream starts, so a bad channel or cursor is a 422, not a broken stream."""
    return parse_cursor(channels, after, last_event_id)


def sse_router(context: ApiContext) -> APIRouter:
    api = APIRouter(tags=["events"])
    feed = context.feed

    @api.get("/events", summary="One page of events after a cursor (for clients that poll)")
    async def events_page(cursor: Annotated[Cursor, Depends(cursor_of)],
                          limit: Annotated[int, Query(ge=1, le=READ_LIMIT)] = READ_LIMIT) -> dict[str, Any]:
        events, upto = await feed.blocking(context.service.events, list(cursor.channels) or None, cursor.after,
                                           limit)
        return {"events": [e.to_json() for e in events], "cursor": upto}

    @api.get("/events/stream", response_class=EventSourceResponse,
             summary="Server-Sent Events: every event after the cursor, then new ones as they are written")
    async def events_stream(cursor: Annotated[Cursor, Depends(cursor_of)]) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=1000, comment="workbench events")
        async with contextlib.aclosing(feed.follow(context.service, cursor)) as batches:
            async for batch in batches:
                for event in batch:  # a quiet stream: FastAPI sends keepalive comments itself
                    yield ServerSentEvent(raw_data=event_text(event), id=str(event.seq), event=event.event_type)

    return api


def ws_router(context: ApiContext, tokens: TokenCheck) -> APIRouter:
    api = APIRouter(tags=["events"])
    feed = context.feed

    @api.websocket("/events/ws")
    async def events_ws(websocket: WebSocket) -> None:
        """A WebSocket of events: every event after ``after`` on ``channels``, then new ones as they are written."""
        try:
            tokens.check_header(websocket.headers.get("authorization"))
            cursor = parse_cursor(websocket.query_params.getlist("channels"), websocket.query_params.get("after"))
        except Unauthorized as exc:
            await websocket.send_denial_response(JSONResponse(
                error_body([problem("authorization", exc.message)]), 401, headers={"WWW-Authenticate": "Bearer"}))
            return
        except (ValidationError, WorkbenchError) as exc:
            code, body, headers = workbench_error(exc)
            await websocket.send_denial_response(JSONResponse(body, code, headers=headers))
            return
        await websocket.accept()
        async with anyio.create_task_group() as group:

            async def until_disconnect() -> None:
                with contextlib.suppress(WebSocketDisconnect):
                    while (await websocket.receive())["type"] != "websocket.disconnect":
                        pass  # the client has nothing to say; it may send pings as text
                group.cancel_scope.cancel()

            group.start_soon(until_disconnect)
            try:
                async with contextlib.aclosing(feed.follow(context.service, cursor)) as batches:
                    async for batch in batches:
                        for event in batch:
                            await websocket.send_text(event_text(event))
                await websocket.close(code=1001, reason="the server is stopping")
            except (WebSocketDisconnect, anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # the client went away mid-send: it reconnects from its last seq
            group.cancel_scope.cancel()

    return api
