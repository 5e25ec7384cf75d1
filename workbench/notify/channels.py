"""Notification channels: a signed JSON webhook, SMTP email, and apprise (DingTalk, WeCom, Feishu, Telegram, ...).

Each channel makes exactly ONE attempt per ``send``: the dispatcher owns retries, backoff and the delivery record, so
a channel's only job is to say whether a failure is worth retrying (``DeliveryRetry``: timeouts, refused connections,
5xx, 429, SMTP 4xx) or not (``DeliveryFailed``: other 4xx, SMTP 5xx, a refused address).

Secrets (the webhook HMAC secret and the query string / userinfo of its URL, the SMTP password, the tokens inside
apprise URLs) never appear in an exception raised here, in a ``repr``, or in a log line of the libraries we drive:
httpx logs every request URL (query string included) at INFO, and apprise may log an unparseable URL verbatim at
ERROR and dumps the parsed tokens at TRACE, so a logging filter on those loggers replaces the registered secrets by
``***`` before any handler sees the record. Exceptions are raised ``from None`` so that a traceback of ours does not
print the library exception under it (text we do not control); the useful part of it is copied, scrubbed, into
our message.
"""

from __future__ import annotations

import email.policy
import hashlib
import hmac
import inspect
import json
import logging
import re
import smtplib
import ssl as ssl_lib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Final
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import apprise
import httpx

from workbench.errors import ValidationError
from workbench.notify.message import Channel, DeliveryFailed, DeliveryRetry, Message

__all__ = [
    "AppriseChannel",
    "EmailChannel",
    "WebhookChannel",
    "build_channel",
    "email_message_id",
    "redact_url",
    "verify_signature",
    "webhook_signature",
]

log = logging.getLogger("workbench.notify")

USER_AGENT: Final = "workbench-notify/0.1"
REDACTED: Final = "***"
# HTTP answers worth another attempt: request timeout, too early, rate limited; every 5xx is added in code.
_RETRY_STATUS: Final = frozenset({408, 425, 429})
# Loggers of the libraries that see our secrets (see the module docstring).
_SCRUBBED_LOGGERS: Final = ("httpx", "apprise", "urllib3.connectionpool")
# Shorter strings are not scrubbed from third-party log lines: replacing "user" or "1" everywhere would garble the
# logs. A short value mostly still goes, inside the whole userinfo or query string registered with it. Our own
# exception messages scrub every registered secret, whatever its length.
_MIN_LOGGED_SECRET: Final = 6
_SNIPPET: Final = 200


# --------------------------------------------------------------------------------------------------------------------
# Redaction


class _SecretScrubber(logging.Filter):
    """Replaces registered secrets by ``***`` in the records of third-party loggers.

    One process-wide instance, attached (once) to the loggers in ``_SCRUBBED_LOGGERS``. A filter on a logger runs
    before any handler, including the root handlers and apprise's own per-call log capture, so the secret never
    reaches a file, the console or an ``AppriseResult``. Secrets stay registered for the life of the process: a
    channel rebuilt after a settings change must not make its old token loggable.
    """

    def __init__(self) -> None:
        super().__init__("workbench.notify.scrubber")
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._installed = False

    def register(self, secrets: Iterable[str]) -> None:
        """Scrub these strings from now on (ignoring ones too short to matter), and install the filter if needed."""
        fresh = {s for s in secrets if len(s) >= _MIN_LOGGED_SECRET}
        with self._lock:
            if not self._installed:
                for name in _SCRUBBED_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True
            if fresh - set(self._secrets):
                # Longest first, so a secret containing another one is replaced whole.
                self._secrets = tuple(sorted(set(self._secrets) | fresh, key=lambda s: (-len(s), s)))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the traceback is scrubbed too.
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
        return True


_scrubber = _SecretScrubber()


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced (longest first); for our own exception messages."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` of a URL: query strings and userinfo carry tokens and must not reach a log line."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path}"


def _url_secrets(url: str) -> set[str]:
    """The secret-bearing parts of an http(s) URL: userinfo and query string, raw, decoded and as httpx encodes them.

    Not the whole URL: scrubbing only these keeps ``POST http://host/path?*** 200`` readable in httpx's log. The
    whole query string and userinfo always count; a single query value or password only from 6 characters, or
    ``?v=1`` would turn every "1" of an error text (``[Errno 111]``) into ``***``.
    """
    parts = urlsplit(url)
    whole: set[str] = set()
    pieces: set[str] = set()
    if parts.query:
        whole.update({parts.query, unquote(parts.query)})
        try:
            whole.add(httpx.URL(url).query.decode("ascii"))
        except (httpx.InvalidURL, UnicodeError):
            pass
        pieces.update(value for _key, value in parse_qsl(parts.query, keep_blank_values=True))
        pieces.update(pair.partition("=")[2] for pair in parts.query.split("&"))
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        whole.update({userinfo, unquote(userinfo)})
        if parts.password:
            pieces.update({parts.password, unquote(parts.password)})
    return {s for s in whole if s} | {s for s in pieces if len(s) >= _MIN_LOGGED_SECRET}


_SCHEMA = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)://")
_HOSTNAME = re.compile(r"^(localhost|[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+)$", re.IGNORECASE)


def _apprise_schema(url: str) -> str:
    """What an apprise URL may show of itself: ``dingtalk://...``; the rest is tokens."""
    match = _SCHEMA.match(url)
    return f"{match.group(1).lower()}://..." if match else "<not a URL>"


def _apprise_secrets(url: str) -> set[str]:
    """Everything in an apprise URL that may be a token.

    Apprise services put their tokens anywhere: in the host (``dingtalk://TOKEN``), the userinfo
    (``tgram://BOTID:TOKEN``), the path (``bark://host/DEVICE_KEY``) or the query (``?secret=``). So every component
    of six characters or more counts, except a dotted host name or IP address (``api.day.app``, ``127.0.0.1``) that
    the operator needs in order to tell which server failed.
    """
    rest = url.strip()
    match = _SCHEMA.match(rest)
    if match:
        rest = rest[match.end():]
    location, _, query = rest.partition("?")
    pieces = [p for p in re.split(r"[/:@,;#\s]+", location) if p]
    for _key, value in parse_qsl(query, keep_blank_values=True):
        pieces.append(value)
    pieces.extend(pair.partition("=")[2] for pair in query.split("&"))
    # Not the whole URL: its token-like pieces cover an unparseable URL that apprise logs verbatim, and scrubbing
    # the rest would hide the host of a ``json://host/path`` URL in every log line about it.
    secrets = {query}
    secrets.update(p for p in pieces if len(p) >= 6 and not _HOSTNAME.match(p))
    secrets.update(unquote(p) for p in list(secrets))
    return {s for s in secrets if s}


def _one_line(text: str) -> str:
    """Header-safe text: a CR or LF in a header value is an injection (and the email package refuses it)."""
    return " ".join(text.split())


def _ascii_header(text: str) -> str:
    """An HTTP header value: one line, and percent-encoded if not ASCII (httpx, like HTTP/1.1, only sends ASCII)."""
    text = _one_line(text)
    return text if text.isascii() else quote(text, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%"))


def _snippet(text: str, secrets: Iterable[str]) -> str:
    """The start of a server's answer, on one line and scrubbed: often the only clue to why it said no."""
    text = _scrub(_one_line(text), secrets)
    if len(text) > _SNIPPET:
        text = text[:_SNIPPET] + "..."
    return f": {text}" if text else ""


def _positive(value: float, field: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, f"must be a number of seconds, got {value!r}") from None
    if not number > 0:
        raise ValidationError(field, f"must be more than 0 seconds, got {value!r}")
    return number


# --------------------------------------------------------------------------------------------------------------------
# Webhook


def _signed_bytes(timestamp: str | int, body: str | bytes) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else body
    return f"{timestamp}.".encode("ascii") + raw


def webhook_signature(secret: str, timestamp: str | int, body: str | bytes) -> str:
    """The ``X-Workbench-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` (UTF-8)."""
    digest = hmac.new(secret.encode("utf-8"), _signed_bytes(timestamp, body), hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str | int, body: str | bytes, header: str, *,
                     tolerance: float | None = None, now: float | None = None) -> bool:
    """Whether ``header`` (an ``X-Workbench-Signature`` value) signs ``body`` sent at ``timestamp`` with ``secret``.

    For receivers: pass the raw request body (bytes, as received; do not re-serialise the JSON) and the
    ``X-Workbench-Timestamp`` header. The comparison is constant-time (``hmac.compare_digest``) so the signature cannot
    be guessed byte by byte. Give ``tolerance`` (seconds, e.g. 300) to also reject a timestamp that far from ``now``:
    the timestamp is inside the signed bytes, so this stops a captured request from being replayed later.
    """
    try:
        expected = webhook_signature(secret, timestamp, body).encode("ascii")
        given = header.strip().encode("utf-8")
    except (UnicodeError, AttributeError):
        return False
    if not hmac.compare_digest(expected, given):
        return False
    if tolerance is not None:
        try:
            sent = int(timestamp)
        except (TypeError, ValueError):
            return False
        return abs((time.time() if now is None else now) - sent) <= tolerance
    return True


class WebhookChannel:
    """POSTs ``message.payload`` as compact, key-sorted UTF-8 JSON to an http(s) URL, once.

    Headers:

    - ``Content-Type: application/json``
    - ``X-Workbench-Idempotency-Key``: the message's key (percent-encoded if it is not ASCII; the payload carries it
      too); a receiver that stores it can drop the duplicates that retries after a lost answer inevitably produce.
    - ``X-Workbench-Timestamp``: Unix seconds when the request was signed.
    - ``X-Workbench-Signature: sha256=<hex>`` (only when a secret is set): HMAC-SHA256, keyed with the secret (UTF-8),
      of the bytes ``f"{timestamp}.{body}"`` where ``body`` is the raw request body. To verify, recompute it over the
      body exactly as received and compare in constant time, as ``verify_signature`` does; reject stale timestamps
      to prevent replays. Signing the timestamp with the body binds the two.

    Outcome of the one attempt: 2xx is delivered; 408, 425, 429, 5xx, timeouts and connection errors raise
    ``DeliveryRetry``; any other answer (4xx, and 3xx: redirects are not followed, since the signed request is meant
    for this receiver only) raises ``DeliveryFailed``. httpx is used directly rather than ``net.HttpClient`` because
    that client retries on its own, and here the dispatcher owns retries. An empty secret means "not signed".
    """

    kind = "webhook"

    def __init__(self, name: str, url: str, secret: str | None = None, timeout: float = 5.0) -> None:
        self.name = name
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
        except (TypeError, ValueError, AttributeError):
            raise ValidationError("notify.webhook.url", "is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError("notify.webhook.url",
                                  f"{redact_url(url)} is not an http:// or https:// URL with a host")
        self._url = url
        self._secret = secret or None
        self.timeout = _positive(timeout, "notify.webhook.timeout")
        # Built once, as the channel is made (when the server starts): it loads the CA store, 10-20 ms of held GIL
        # that would otherwise fall on the first alert, beside the monitor loop.
        self._context = ssl_lib.create_default_context()
        self.where = redact_url(url)
        self._secrets = _url_secrets(url) | ({self._secret} if self._secret else set())
        _scrubber.register(self._secrets)

    def __repr__(self) -> str:
        signed = ", signed" if self._secret else ""
        return f"WebhookChannel(name={self.name!r}, url={self.where!r}{signed})"

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise DeliveryRetry / DeliveryFailed; see the class docstring for which is which."""
        body = json.dumps(message.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Workbench-Idempotency-Key": _ascii_header(message.idempotency_key),
            "X-Workbench-Timestamp": timestamp,
        }
        if self._secret:
            headers["X-Workbench-Signature"] = webhook_signature(self._secret, timestamp, body)
        what = f"webhook {self.name!r}: POST {self.where}"
        started = time.monotonic()
        try:
            # A fresh client per send (a long-lived pool would need closing by someone), on the channel's one TLS
            # context.
            with httpx.Client(timeout=self.timeout, follow_redirects=False, verify=self._context) as client:
                response = client.post(self._url, content=body.encode("utf-8"), headers=headers)
        except httpx.TimeoutException:
            raise DeliveryRetry(f"{what} timed out after {self.timeout:g} s") from None
        except httpx.HTTPError as exc:  # connection refused/reset, closed without answer, TLS, DNS
            detail = _scrub(str(exc), self._secrets) or "no detail"
            raise DeliveryRetry(f"{what} failed ({type(exc).__name__}: {detail})") from None
        status = response.status_code
        if 200 <= status < 300:
            log.debug("%s delivered (HTTP %d) in %.0f ms", what, status, 1000 * (time.monotonic() - started))
            return
        problem = f"{what} answered HTTP {status}{_snippet(response.text, self._secrets)}"
        if status in _RETRY_STATUS or status >= 500:
            retry_after = response.headers.get("Retry-After")
            hint = f" (Retry-After: {_one_line(retry_after)[:40]})" if retry_after else ""
            raise DeliveryRetry(problem + hint)
        if 300 <= status < 400:
            problem += "; redirects are not followed, point the URL at the final address"
        raise DeliveryFailed(problem)


# --------------------------------------------------------------------------------------------------------------------
# Email

# 7-bit transfer encoding (base64 / quoted-printable bodies): Chinese text gets through any relay, including one that
# does not announce 8BITMIME, and no body line can exceed SMTP's 998-octet limit.
_EMAIL_POLICY: Final = email.policy.SMTP.clone(cte_type="7bit")


def email_message_id(idempotency_key: str, sender: str) -> str:
    """The ``Message-ID`` of the email for ``idempotency_key``: the same key always gives the same id.

    A retried send after a lost answer therefore produces an exact duplicate that mail clients and receiving
    scripts can drop by Message-ID. The key is hashed because a msg-id allows only a restricted character set;
    the raw key travels in the ``X-Workbench-Idempotency-Key`` header. The right-hand side is the sender's domain.
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    domain = re.sub(r"[^A-Za-z0-9.\-]", "", parseaddr(sender)[1].rpartition("@")[2]) or "workbench.invalid"
    return f"<wb.{digest}@{domain}>"


def _flag(value: bool | str, field: str) -> bool:
    """A yes/no option; strings too, since ``bool("false")`` is True and settings may arrive as text."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(field, f"must be true or false, got {value!r}")


def _addresses(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str):
        value = re.split(r"[,;]", value)
    return [a.strip() for a in value if a and a.strip()]


class EmailChannel:
    """Sends a multipart/alternative email (``message.text`` and ``message.html``) over SMTP, once.

    ``ssl=True`` is implicit TLS (port 465); ``starttls=True`` upgrades a plain connection (port 587); both use the
    system's certificate store. The ``Message-ID`` is derived from the idempotency key (``email_message_id``) so a
    receiver can deduplicate retries, and the key itself is in ``X-Workbench-Idempotency-Key``.

    Outcome of the one attempt: refused or dropped connections, timeouts, TLS errors and 4xx (transient) SMTP replies
    raise ``DeliveryRetry``; 5xx (permanent) replies raise ``DeliveryFailed``: a rejected login, sender or message,
    and any recipient refused with 5xx (even if others accepted the message, since a human must fix the address);
    a server without STARTTLS or AUTH is a configuration error, also ``DeliveryFailed``. The password is only ever
    handed to ``smtplib.login``; it is not in ``repr`` and is scrubbed from any server text we quote.
    """

    kind = "email"

    def __init__(self, name: str, host: str, port: int, sender: str, recipients: Sequence[str] | str,
                 username: str | None = None, password: str | None = None, starttls: bool = False,
                 ssl: bool = False, timeout: float = 10.0) -> None:
        self.name = name
        if not host or not str(host).strip():
            raise ValidationError("notify.email.host", "is required")
        self.host = str(host).strip()
        try:
            self.port = int(port)
        except (TypeError, ValueError):
            raise ValidationError("notify.email.port", f"must be a port number, got {port!r}") from None
        if not 0 < self.port < 65536:
            raise ValidationError("notify.email.port", f"must be 1-65535, got {self.port}")
        self.sender = _one_line(sender or "")
        if "@" not in parseaddr(self.sender)[1]:
            raise ValidationError("notify.email.sender", f"{sender!r} is not an email address")
        self.recipients = _addresses(recipients)
        if not self.recipients:
            raise ValidationError("notify.email.recipients", "at least one address is required")
        for address in self.recipients:
            if "@" not in parseaddr(address)[1] or _one_line(address) != address:
                raise ValidationError("notify.email.recipients", f"{address!r} is not an email address")
        starttls, ssl = _flag(starttls, "notify.email.starttls"), _flag(ssl, "notify.email.ssl")
        if starttls and ssl:
            raise ValidationError("notify.email.ssl", "choose ssl (implicit TLS, port 465) or starttls (port 587), "
                                                      "not both")
        if password and not username:
            raise ValidationError("notify.email.username", "is required when a password is set")
        self.username = username or None
        self._password = password or ""
        self.starttls = starttls
        self.ssl = ssl
        self.timeout = _positive(timeout, "notify.email.timeout")

    def __repr__(self) -> str:
        tls = " ssl" if self.ssl else " starttls" if self.starttls else ""
        login = f" as {self.username}" if self.username else ""
        return f"EmailChannel(name={self.name!r}, smtp={self.host}:{self.port}{tls}{login}, to={self.recipients!r})"

    def compose(self, message: Message) -> EmailMessage:
        """The email for ``message``; public so a preview can show exactly what would be sent."""
        mail = EmailMessage(policy=_EMAIL_POLICY)
        mail["Subject"] = _one_line(message.title)
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail["Date"] = formatdate(localtime=True)
        mail["Message-ID"] = email_message_id(message.idempotency_key, self.sender)
        mail["X-Workbench-Idempotency-Key"] = _one_line(message.idempotency_key)
        mail.set_content(message.text)
        mail.add_alternative(message.html, subtype="html")
        return mail

    def send(self, message: Message) -> None:
        """Deliver ``message`` or raise DeliveryRetry / DeliveryFailed; see the class docstring for which is which."""
        mail = self.compose(message)
        what = f"email {self.name!r}: SMTP {self.host}:{self.port}"
        try:
            refused = self._deliver(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise self._refused(what, exc.recipients, delivered=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise self._reply(what, "refused the login (check username and password)", exc) from None
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, greeting or HELO refused
            raise self._reply(what, "refused the message", exc) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryFailed(f"{what}: {self._clean(str(exc))} (check the starttls / ssl / username options)"
                                 ) from None
        except (TimeoutError, smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
            kind = "timed out" if isinstance(exc, TimeoutError) else "failed"
            detail = self._clean(str(exc)) or "no detail"
            raise DeliveryRetry(f"{what} {kind} ({type(exc).__name__}: {detail})") from None
        if refused:
            raise self._refused(what, refused, delivered=True)
        log.debug("%s delivered to %d recipient(s)", what, len(self.recipients))

    def _deliver(self, mail: EmailMessage) -> dict[str, tuple[int, bytes]]:
        context = ssl_lib.create_default_context()
        smtp: smtplib.SMTP
        if self.ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password)
            refused = smtp.send_message(mail, from_addr=parseaddr(self.sender)[1],
                                        to_addrs=[parseaddr(a)[1] for a in self.recipients])
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()  # not `with smtp:`, whose QUIT can raise after the message was accepted
        except (smtplib.SMTPException, OSError):
            smtp.close()
        return refused

    def _clean(self, text: str) -> str:
        return _scrub(_one_line(text), [self._password])

    def _reply(self, what: str, action: str, exc: smtplib.SMTPResponseException) -> DeliveryRetry | DeliveryFailed:
        code = exc.smtp_code
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        problem = f"{what} {action}: {code} {self._clean(text)}"
        return DeliveryFailed(problem) if 500 <= code < 600 else DeliveryRetry(problem)

    def _refused(self, what: str, refused: Mapping[str, tuple[int, bytes | str]],
                 delivered: bool) -> DeliveryRetry | DeliveryFailed:
        details = []
        for address, (code, reply) in refused.items():
            text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            details.append(f"{address}: {code} {self._clean(text)}")
        others = " (the other recipients accepted it)" if delivered else ""
        problem = f"{what} refused recipient(s) {'; '.join(details)}{others}"
        permanent = any(500 <= code < 600 for code, _ in refused.values())
        return DeliveryFailed(problem) if permanent else DeliveryRetry(problem)


# --------------------------------------------------------------------------------------------------------------------
# Apprise


# apprise 2.x bounds a whole notify() call; 1.x (still allowed by the project's dependency range) has no such argument
# and relies on its per-request timeouts only.
_NOTIFY_TAKES_TIMEOUT: Final = "timeout" in inspect.signature(apprise.Apprise.notify).parameters


class AppriseChannel:
    """Sends ``message.title`` and ``message.text`` (plain text) to one or more apprise URLs, once.

    Chinese IM services as apprise URLs (tokens are what the bot's webhook address carries; check
    ``apprise --details`` or the apprise wiki for every option):

    ==========  =========================================================  ===========================================
    Service     URL form                                                   Where the token comes from
    ==========  =========================================================  ===========================================
    DingTalk    ``dingtalk://{access_token}/``                             robot webhook ``...?access_token=``
                ``dingtalk://{sign_secret}@{access_token}/``               with "加签" (signing) enabled
    WeCom bot   ``wecombot://{key}``                                       group robot webhook ``...?key=``
    Feishu      ``feishu://{token}``                                       custom bot webhook ``.../hook/{token}``
    Telegram    ``tgram://{bot_token}/{chat_id}``                          @BotFather token, then the chat id
    ServerChan  ``schan://{sendkey}``                                      Server酱 SendKey
    Bark        ``bark://{host}/{device_key}`` (``barks://`` for https)    Bark app, e.g. ``barks://api.day.app/KEY``
    JSON        ``json://{host}:{port}/{path}`` (``jsons://`` for https)   any endpoint; posts title and message
    ==========  =========================================================  ===========================================

    A URL apprise cannot use raises ``ValidationError("notify.apprise", ...)`` at construction, showing only the
    schema (``dingtalk://...``): everything after it may be a token. ``notify`` reporting anything but success
    raises ``DeliveryRetry`` (apprise does not tell a bad token from an outage); with several URLs a retry re-sends
    to all of them. Apprise's own retries are off (its default ``retry=0``), so this is one attempt; ``timeout``
    bounds the whole call on apprise 2.x (apprise's per-request connect/read timeouts default to 4 s each, and can
    be set per URL with ``?cto=`` and ``?rto=``).

    Logging: apprise masks what it judges secret itself (its CWE-312 heuristic shows ``t...M`` for a random-looking
    word, ``****`` for a password) in its "Loaded ... URL", "Could not load" and "Unparseable URL" lines, but a token
    the heuristic does not flag (all capitals, short, a schema-less string) is logged verbatim at ERROR, its TRACE
    "unpacked as" dump shows every parsed field unmasked, and urllib3 logs request paths (DingTalk's
    ``?access_token=``) at DEBUG. This module's log filter scrubs the URL's token-like parts from all of them.
    """

    kind = "apprise"

    def __init__(self, name: str, urls: Sequence[str] | str, timeout: float = 10.0) -> None:
        self.name = name
        listed = [urls] if isinstance(urls, str) else [u for u in urls if u and u.strip()]
        if not listed:
            raise ValidationError("notify.apprise.urls", "at least one apprise URL is required")
        self.timeout = _positive(timeout, "notify.apprise.timeout")
        secrets: set[str] = set()
        for url in listed:
            secrets |= _apprise_secrets(url)
        _scrubber.register(secrets)  # before apprise parses (and logs) anything
        self._secrets = secrets
        self.schemas = [_apprise_schema(url) for url in listed]
        self._apprise = apprise.Apprise()
        for url, shown in zip(listed, self.schemas, strict=True):
            if not self._apprise.add(url):
                raise ValidationError("notify.apprise", f"{shown} is not a usable apprise URL ({_why_unusable(url)})")

    def __repr__(self) -> str:
        return f"AppriseChannel(name={self.name!r}, urls={self.schemas!r})"

    def send(self, message: Message) -> None:
        """Deliver ``message`` to every URL or raise DeliveryRetry naming the services that failed."""
        what = f"apprise {self.name!r}"
        bound = {"timeout": self.timeout} if _NOTIFY_TAKES_TIMEOUT else {}
        try:
            result = self._apprise.notify(body=message.text, title=message.title,
                                          body_format=apprise.NotifyFormat.TEXT, **bound)
        except Exception as exc:  # apprise reports failures by result; an exception is a bug or a bad argument
            raise DeliveryRetry(f"{what}: apprise raised {type(exc).__name__}: "
                                f"{_scrub(str(exc), self._secrets)}") from None
        if result:
            log.debug("%s delivered to %d service(s)", what, len(self.schemas))
            return
        raise DeliveryRetry(f"{what}: {self._describe(result)}")

    def _describe(self, result: Any) -> str:
        """Which services failed and apprise's warnings about them (already scrubbed by the log filter)."""
        status = getattr(getattr(result, "status", None), "name", "FAILURE")
        if not hasattr(result, "logs"):  # apprise 1.x returns a plain bool
            return f"delivery {status.lower()}"
        failed = [str(getattr(r, "name", "?")) for r in result if not r]
        warnings = [_scrub(_scrubber.scrub(str(entry.message)), self._secrets) for entry in result.logs()
                    if _level(getattr(entry, "level", 0)) >= logging.WARNING]
        text = f"delivery {status.lower()}"
        if failed:
            text += f" ({', '.join(failed)})"
        if warnings:
            text += ": " + " | ".join(_one_line(w) for w in warnings[-3:])[: 2 * _SNIPPET]
        return text


def _level(level: int | str) -> int:
    """A log level as a number; apprise's captured entries carry names (``"WARNING"``)."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(str(level).upper())
    return number if isinstance(number, int) else logging.WARNING


def _why_unusable(url: str) -> str:
    match = _SCHEMA.match(url)
    if not match:
        return "expected schema://..."
    try:
        from apprise.apprise import N_MGR  # internal, hence guarded: only used to word the error better

        known = match.group(1).lower() in N_MGR
    except Exception:
        return "unknown service, or a missing or malformed token"
    return "a missing or malformed token" if known else "unknown service"


# --------------------------------------------------------------------------------------------------------------------
# Factory

_KINDS: Final[dict[str, tuple[Callable[..., Channel], tuple[str, ...], tuple[str, ...]]]] = {
    # kind: (class, required options, optional options)
    "webhook": (WebhookChannel, ("url",), ("secret", "timeout")),
    "email": (EmailChannel, ("host", "port", "sender", "recipients"),
              ("username", "password", "starttls", "ssl", "timeout")),
    "apprise": (AppriseChannel, ("urls",), ("timeout",)),
}


def build_channel(kind: str, name: str, **options: Any) -> Channel:
    """The channel of ``kind`` named ``name``, from options as settings hold them.

    Checks the option names first so a typo (``recipient=``) is reported as such instead of surfacing as a
    ``TypeError`` deep in a constructor; ``None`` counts as missing, so unset settings can be passed straight through.
    """
    key = (kind or "").strip().lower()
    if key not in _KINDS:
        choices = ", ".join(sorted(_KINDS))
        raise ValidationError("notify.kind", f"unknown channel kind {kind!r}; choose one of {choices}")
    if not name or not str(name).strip():
        raise ValidationError(f"notify.{key}.name", "a channel needs a name")
    factory, required, optional = _KINDS[key]
    for option in options:
        if option not in required and option not in optional:
            raise ValidationError(f"notify.{key}.{option}",
                                  f"unknown option; {key} takes {', '.join(required + optional)}")
    for option in required:
        value = options.get(option)
        if value is None or (isinstance(value, str | list | tuple) and not value):
            raise ValidationError(f"notify.{key}.{option}", "is required")
    given = {k: v for k, v in options.items() if v is not None}
    return factory(str(name).strip(), **given)
