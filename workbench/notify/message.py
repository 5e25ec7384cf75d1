"""What a notification channel is given to deliver, and how it says it failed. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.errors import TransientError, WorkbenchError


@dataclass(frozen=True)
class Message:
    """One alert (or a digest of several) for one channel.

    ``payload`` is the stable JSON body of webhooks (schema ``workbench.alert/1``): ``schema``, ``idempotency_key``,
    ``kind`` (``alert`` or ``digest``), ``alerts`` (a list of alert dicts: trigger_id, task_id, task_name, code,
    name, rule, condition, price, ts (ISO 8601, Asia/Shanghai), late, url, and ``idempotency_key``: the alert's own
    key, ``trigger_id:channel``, the same in every message that carries it). ``text`` and ``html`` are the rendered
    bodies for email and IM; ``title`` is a subject line.
    """

    idempotency_key: str
    title: str
    text: str
    html: str
    payload: dict[str, Any] = field(default_factory=dict)


class DeliveryFailed(WorkbenchError):
    """A channel refused a message for good (bad address, 4xx): retrying will not help."""


class DeliveryRetry(TransientError):
    """A channel could not deliver now (timeout, refused connection, 5xx, 429): retry later."""


class Channel(Protocol):
    """A place alerts go. ``send`` delivers one message or raises DeliveryRetry / DeliveryFailed; it never logs or
    raises its secrets (URLs with tokens, passwords)."""

    name: str
    kind: str

    def send(self, message: Message) -> None: ...
