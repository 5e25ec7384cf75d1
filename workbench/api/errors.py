"""One error shape for every answer that is not a success: ``{"detail": [{"field": ..., "message": ...}]}``.

Bad input (the project's ValidationError, pydantic's own request validation) is 422 and names the field; a missing
task is 404; a busy store or another transient failure is 503 with Retry-After; a wrong or missing token is 401.
Anything unexpected is a 500 that says so in one line: the traceback goes to the server's log, never to the client.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workbench.errors import NotFound, OperationalError, TransientError, ValidationError, WorkbenchError
from workbench.safetext import shown

log = logging.getLogger("workbench.api")

RETRY_AFTER = 2  # seconds a client should wait before retrying a busy store
_FIELD_PREFIX = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_.]*): (?P<message>.*)$", re.DOTALL)
_LOCATIONS = ("body", "query", "path", "header", "cookie")


class Unauthorized(Exception):
    """The request did not carry the server's token (401)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def problem(field: str | None, message: str) -> dict[str, Any]:
    """One entry of ``detail``: the field (None when the whole request is meant) and the problem in words."""
    return {"field": field, "message": shown(message, keep_newlines=True)}


def error_body(problems: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": list(problems)}


def split_field(text: str) -> tuple[str | None, str]:
    """The project's messages start with the field they are about (``task_id: no task with id 9``)."""
    match = _FIELD_PREFIX.match(text)
    return (match["field"], match["message"]) if match else (None, text)


def workbench_error(exc: WorkbenchError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for one of the project's own errors."""
    if isinstance(exc, ValidationError):
        return 422, error_body([problem(exc.field, exc.problem)]), {}
    field, message = split_field(str(exc))
    body = error_body([problem(field, message)])
    if isinstance(exc, NotFound):
        return 404, body, {}
    if isinstance(exc, TransientError):
        return 503, body, {"Retry-After": str(RETRY_AFTER)}
    if isinstance(exc, OperationalError):
        return 500, body, {}
    return 500, body, {}


def request_problems(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's request errors in our shape: ``("body", "speed")`` is the field ``speed``."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        if error.get("type") == "json_invalid":
            where = []
        field = ".".join(where) or (loc[0] if loc else None)
        out.append(problem(field, str(error.get("msg", "invalid")).removeprefix("Value error, ")))
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that give every failure the one shape."""

    async def on_workbench(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WorkbenchError)
        status, body, headers = workbench_error(exc)
        if status >= 500:
            log.warning("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse(body, status_code=status, headers=headers)

    async def on_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError | WebSocketRequestValidationError)
        return JSONResponse(error_body(request_problems(exc.errors())), status_code=422)

    async def on_unauthorized(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unauthorized)
        return JSONResponse(error_body([problem("authorization", exc.message)]), status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(error_body([problem(None, str(exc.detail))]), status_code=exc.status_code,
                            headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body([problem(None, "internal error: the server's log has the details")]),
                            status_code=500)

    app.add_exception_handler(WorkbenchError, on_workbench)
    app.add_exception_handler(RequestValidationError, on_request)
    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
