"""The workbench server's HTTP API and event stream, as a library: the server process builds the app with
:func:`create_api`, tells its :class:`Notifier` when events are written, and serves it (:func:`serve_api`, or mounted
into an ASGI app of its own)."""

from workbench.api.app import API_PREFIX, close_streams, create_api
from workbench.api.feed import Notifier
from workbench.api.serve import ApiServer, serve_api

__all__ = ["API_PREFIX", "ApiServer", "Notifier", "close_streams", "create_api", "serve_api"]
