"""The HTTP API of the workbench server: a FastAPI app over one :class:`workbench.control.Service`.

Routes are thin: each checks its input, calls the control plane in a worker thread, and shapes the answer as JSON.
The app is a library object with no process of its own: the server mounts it (or serves it with
:func:`workbench.api.serve.serve_api`), keeps the store open, and calls ``notifier.notify()`` after each write that
appended events so the streams are prompt.

Authentication: with a token, every route under ``/api/v1`` (streams included) needs ``Authorization: Bearer
<token>``; ``/health`` and the OpenAPI docs (``/docs``, ``/openapi.json``) do not, as they hold no data. The token is
compared in constant time and never logged, stored or echoed.
"""

from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workbench.api import errors, jobs, routes, stream
from workbench.api.common import ApiContext, TokenCheck
from workbench.api.feed import EventFeed, Notifier
from workbench.control import Service

API_PREFIX = "/api/v1"


def create_api(service: Service, token: str | None = None, notifier: Notifier | None = None, *,
               poll: float = 1.0, threads: int = 16) -> FastAPI:
    """The API app over ``service`` (its actor, usually ``api``, is who the audit log names unless a request says
    ``X-Workbench-Actor: cli`` / ``notebook`` ...).

    Parameters
    ----------
    service
        The control plane; its store must stay open for the app's life.
    token
        When set, required as a bearer token on every route but ``/health`` and the docs.
    notifier
        Called by the server after each write that appended events; None: the app makes its own, which its own
        commands notify, and streams find other writers' events within ``poll`` seconds.
    poll
        Seconds a caught-up stream waits for a notification before it looks at the store anyway.
    threads
        Worker threads for blocking calls (DuckDB reads, commands), shared by all routes and streams.

    Returns
    -------
    The app; ``app.state.notifier`` is its notifier (``close()`` ends the streams, e.g. before a shutdown).
    """
    notifier = notifier or Notifier()
    feed = EventFeed(notifier, anyio.CapacityLimiter(threads), poll=poll)
    tokens = TokenCheck(token)
    context = ApiContext(service, feed)
    bearer = HTTPBearer(auto_error=False, description="the token the server advertises beside the database")

    # (no ``from __future__ import annotations`` here: FastAPI must see this closure's annotation, not its text)
    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        tokens.check(None if credentials is None else credentials.credentials)

    app = FastAPI(title="A-share workbench API", version="1",
                  description="Tasks, the monitor service, notifications, the audit log and the event stream of "
                              "one workbench server. Errors: `{\"detail\": [{\"field\", \"message\"}]}`.")
    app.state.notifier = notifier
    app.state.context = context
    app.state.token_required = tokens.required
    errors.install(app)
    app.include_router(routes.health_router(context))
    app.include_router(routes.router(context), prefix=API_PREFIX, dependencies=[Depends(authorized)])
    app.include_router(jobs.router(context), prefix=API_PREFIX, dependencies=[Depends(authorized)])
    app.include_router(stream.sse_router(context), prefix=API_PREFIX, dependencies=[Depends(authorized)])
    app.include_router(stream.ws_router(context, tokens), prefix=API_PREFIX)
    return app


def close_streams(app: Any) -> None:
    """End the event streams of an app made by :func:`create_api` (before its server stops: a stream never ends on
    its own); anything else is left alone."""
    context = getattr(getattr(app, "state", None), "context", None)
    if isinstance(context, ApiContext):
        context.feed.close()
