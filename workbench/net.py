"""The one module that talks to the network: an HTTP client with timeouts, bounded retries and clear errors.

Feeds and kline sources build requests and parse bytes (pure functions); this module moves the bytes.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import httpx

from workbench.errors import TransientError

log = logging.getLogger("workbench.net")

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) workbench/0.1"
_RETRY_STATUS = {429, 500, 502, 503, 504}


class FeedUnavailable(TransientError):
    """A remote source did not answer usefully within the retry bound."""


class HttpClient:
    """A pooled HTTP client. Use one per job; close it (or use it as a context manager) when done."""

    def __init__(self, timeout: float = 10.0, retries: int = 3, backoff: float = 0.5,
                 headers: Mapping[str, str] | None = None) -> None:
        self.retries = retries
        self.backoff = backoff
        self._client = httpx.Client(timeout=timeout, headers={"User-Agent": USER_AGENT, **(headers or {})},
                                    follow_redirects=True)

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> bytes:
        """The body of a successful GET; retries timeouts, connection errors and 429/5xx with backoff."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._client.get(url, params=params, headers=headers)
                if response.status_code not in _RETRY_STATUS:
                    if response.status_code >= 400:
                        raise FeedUnavailable(f"GET {_where(url)} answered HTTP {response.status_code}")
                    return response.content
                problem = f"HTTP {response.status_code}"
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__})"
            if attempt < self.retries:
                log.warning("GET %s %s; retry %d of %d", _where(url), problem, attempt + 1, self.retries)
                time.sleep(delay * (0.5 + random.random()))
                delay *= 2
        raise FeedUnavailable(f"GET {_where(url)} {problem} after {self.retries + 1} attempts")


def _where(url: str) -> str:
    """Scheme, host and path only: query strings may carry tokens that must not reach the logs."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{':' + str(parsed.port) if parsed.port else ''}{parsed.path}"
