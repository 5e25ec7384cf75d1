"""Notification channels against real servers on 127.0.0.1: an HTTP server, an aiosmtpd SMTP server.

Every failure mode a channel must classify (5xx, 4xx, a stalled answer, a dropped connection, nothing listening, a
refused recipient, a refused login) is produced for real, and every error text is checked for leaked secrets.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from workbench.errors import ValidationError
from workbench.notify.channels import (
    AppriseChannel,
    EmailChannel,
    WebhookChannel,
    build_channel,
    email_message_id,
    verify_signature,
    webhook_signature,
)
from workbench.notify.message import DeliveryFailed, DeliveryRetry, Message

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning"),  # apprise's pgp module
]

SECRET = "hmac-secret-Zq81xv"
TOKEN = "tok3nQ9wYp2LkM"
PASSWORD = "pa55-word-Hh7rT"
STALL_BOUND = 1.0  # seconds a stalled answer waits at most, so a broken test cannot hang


def message(key: str = "trigger-42:2026-11-25T10:31:00+08:00") -> Message:
    alert = {"trigger_id": 42, "code": "600519.SH", "name": "贵州茅台", "rule": "last > 1700", "price": 1701.5,
             "ts": "2026-11-25T10:31:00+08:00", "late": False}
    return Message(idempotency_key=key, title="价格提醒: 贵州茅台 600519.SH 1701.5",
                   text="贵州茅台 (600519.SH) last > 1700: 1701.5",
                   html="<p><b>贵州茅台</b> last &gt; 1700: 1701.5</p>",
                   payload={"schema": "workbench.alert/1", "idempotency_key": key, "kind": "alert", "alerts": [alert]})


def free_port() -> int:
    """A port nothing listens on (bound then released; the kernel does not hand it out again right away)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------------------------------
# A local HTTP server


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpServer:
    """A ThreadingHTTPServer in a thread: records each POST and answers as ``mode`` says."""

    server: ThreadingHTTPServer
    requests: list[Recorded] = field(default_factory=list)
    mode: str = "ok"  # ok | 500 | 404 | 429 | stall | close
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    state: HttpServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            if state.mode == "close":
                self.close_connection = True  # hang up without a word
                return
            if state.mode == "stall":
                state.release.wait(STALL_BOUND)
            status = {"500": 500, "404": 404, "429": 429}.get(state.mode, 200)
            answer = b"no such hook" if status == 404 else b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = HttpServer(server)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def assert_no_secrets(text: str) -> None:
    for secret in (SECRET, TOKEN, PASSWORD):
        assert secret not in text


# ---------------------------------------------------------------------------------------------------------------------
# Webhook


def test_webhook_delivers_the_exact_body_with_a_verifiable_signature(http_server: HttpServer) -> None:
    msg = message()
    WebhookChannel("hook", http_server.url(f"/hook?token={TOKEN}"), secret=SECRET).send(msg)

    (request,) = http_server.requests
    expected = json.dumps(msg.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    assert request.body == expected
    assert "贵州茅台".encode() in request.body  # UTF-8, not \\u escapes
    assert request.path == f"/hook?token={TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-workbench-idempotency-key"] == msg.idempotency_key
    timestamp = request.headers["x-workbench-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signature = request.headers["x-workbench-signature"]
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, timestamp, request.body, signature)
    assert verify_signature(SECRET, timestamp, request.body, signature, tolerance=300)
    assert not verify_signature("other-secret", timestamp, request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body + b" ", signature)
    assert not verify_signature(SECRET, int(timestamp) + 1, request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body, "sha256=" + "0" * 64)
    assert not verify_signature(SECRET, timestamp, request.body, "签名")


def test_signature_scheme_and_replay_window() -> None:
    import hashlib
    import hmac

    body = '{"a":"中"}'
    expected = hmac.new(SECRET.encode(), f"1700000000.{body}".encode(), hashlib.sha256).hexdigest()
    assert webhook_signature(SECRET, 1700000000, body) == f"sha256={expected}"
    header = webhook_signature(SECRET, "1700000000", body.encode())
    assert verify_signature(SECRET, "1700000000", body, header, tolerance=300, now=1700000100)
    assert not verify_signature(SECRET, "1700000000", body, header, tolerance=300, now=1700000400)


def test_webhook_without_secret_is_not_signed(http_server: HttpServer) -> None:
    WebhookChannel("hook", http_server.url(), secret="").send(message())
    (request,) = http_server.requests
    assert "x-workbench-signature" not in request.headers
    assert request.headers["x-workbench-idempotency-key"]


def test_webhook_non_ascii_key_is_percent_encoded(http_server: HttpServer) -> None:
    from urllib.parse import unquote

    WebhookChannel("hook", http_server.url()).send(message("任务 7:2026-11-25"))
    (request,) = http_server.requests
    assert request.headers["x-workbench-idempotency-key"].isascii()
    assert unquote(request.headers["x-workbench-idempotency-key"]) == "任务 7:2026-11-25"
    assert json.loads(request.body)["idempotency_key"] == "任务 7:2026-11-25"


@pytest.mark.parametrize("mode", ["500", "429", "stall", "close"])
def test_webhook_transient_failures_ask_for_a_retry(http_server: HttpServer, mode: str) -> None:
    http_server.mode = mode
    channel = WebhookChannel("hook", http_server.url(f"/hook?token={TOKEN}").replace("http://", "http://bot:" +
                             PASSWORD + "@"), secret=SECRET, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(DeliveryRetry) as caught:
        channel.send(message())
    assert time.monotonic() - started < STALL_BOUND  # one attempt, bounded by the timeout
    assert len(http_server.requests) == 1
    text = str(caught.value)
    assert f"127.0.0.1:{http_server.port}/hook" in text
    assert_no_secrets(text)
    assert_no_secrets(repr(channel))
    if mode == "stall":
        assert "timed out" in text


def test_webhook_permanent_failure(http_server: HttpServer) -> None:
    http_server.mode = "404"
    with pytest.raises(DeliveryFailed) as caught:
        WebhookChannel("hook", http_server.url(f"/hook?token={TOKEN}"), secret=SECRET).send(message())
    assert "HTTP 404" in str(caught.value) and "no such hook" in str(caught.value)
    assert_no_secrets(str(caught.value))


def test_webhook_nothing_listening_asks_for_a_retry() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token={TOKEN}"
    with pytest.raises(DeliveryRetry) as caught:
        WebhookChannel("hook", url, secret=SECRET, timeout=1.0).send(message())
    assert "ConnectError" in str(caught.value)
    assert_no_secrets(str(caught.value))


def test_webhook_token_stays_out_of_httpx_log(http_server: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
    token = uuid.uuid4().hex  # unseen by earlier tests: the log filter is process-wide
    caplog.set_level(logging.DEBUG)
    WebhookChannel("hook", http_server.url(f"/hook?token={token}"), secret=SECRET).send(message())
    lines = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("httpx", "httpcore", "workbench")))
    assert f"POST http://127.0.0.1:{http_server.port}/hook?***" in lines  # httpx logs the URL at INFO, scrubbed
    assert token not in lines


def test_webhook_rejects_a_bad_url() -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookChannel("hook", f"ftp://example.invalid/hook?token={TOKEN}")
    assert caught.value.field == "notify.webhook.url"
    assert_no_secrets(str(caught.value))


# ---------------------------------------------------------------------------------------------------------------------
# Email


class Collector:
    """aiosmtpd handler: keeps accepted messages; refuses ``refused*`` (550) and ``busy*`` (451) recipients."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.startswith("refused"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy"):
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def _authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"wb", PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd itself answers "535 ..." on failure


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Collector]]:
    collector = Collector()
    # AUTH over plain text is fine on loopback; without a login the server still accepts mail.
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), ready_timeout=5.0,
                            authenticator=_authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield controller, collector
    finally:
        controller.stop()


def email_channel(controller: Controller, **options: Any) -> EmailChannel:
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": controller.port, "sender": "Workbench <wb@example.com>",
                                "recipients": ["trader@example.com"], "timeout": 3.0}
    settings.update(options)
    return EmailChannel("mail", **settings)


def test_email_arrives_with_subject_both_parts_and_a_stable_message_id(
        smtp_server: tuple[Controller, Collector]) -> None:
    controller, collector = smtp_server
    msg = message()
    email_channel(controller, username="wb", password=PASSWORD).send(msg)

    (envelope,) = collector.envelopes
    assert envelope.mail_from == "wb@example.com"
    assert envelope.rcpt_tos == ["trader@example.com"]
    assert isinstance(envelope.content, bytes)
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == msg.title
    assert received.get_content_type() == "multipart/alternative"
    plain, html = received.get_body(("plain",)), received.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().strip() == msg.text
    assert html.get_content().strip() == msg.html
    assert received["Message-ID"] == email_message_id(msg.idempotency_key, "wb@example.com")
    assert received["Message-ID"] == email_message_id(msg.idempotency_key, "Other <x@example.com>")  # same key, same id
    assert received["Message-ID"] != email_message_id("another key", "wb@example.com")
    assert received["X-Workbench-Idempotency-Key"] == msg.idempotency_key
    assert PASSWORD.encode() not in envelope.content


def test_email_recipient_refused_for_good(smtp_server: tuple[Controller, Collector]) -> None:
    controller, collector = smtp_server
    channel = email_channel(controller, recipients=["refused@example.com"], username="wb", password=PASSWORD)
    with pytest.raises(DeliveryFailed) as caught:
        channel.send(message())
    assert "refused@example.com: 550" in str(caught.value)
    assert_no_secrets(str(caught.value))
    assert collector.envelopes == []


def test_email_recipient_refused_for_now_and_partial_refusal(smtp_server: tuple[Controller, Collector]) -> None:
    controller, collector = smtp_server
    with pytest.raises(DeliveryRetry, match="451"):
        email_channel(controller, recipients=["busy@example.com"]).send(message())
    # One good, one permanently bad address: delivered to the good one, but a human must fix the bad one.
    with pytest.raises(DeliveryFailed, match="other recipients accepted"):
        email_channel(controller, recipients=["trader@example.com", "refused@example.com"]).send(message())
    assert [e.rcpt_tos for e in collector.envelopes] == [["trader@example.com"]]


def test_email_bad_login_fails_without_showing_the_password(smtp_server: tuple[Controller, Collector]) -> None:
    controller, _ = smtp_server
    channel = email_channel(controller, username="wb", password=PASSWORD + "-wrong")
    with pytest.raises(DeliveryFailed, match="login") as caught:
        channel.send(message())
    assert_no_secrets(str(caught.value) + repr(channel))


def test_email_nothing_listening_asks_for_a_retry() -> None:
    channel = EmailChannel("mail", "127.0.0.1", free_port(), "wb@example.com", ["trader@example.com"],
                           username="wb", password=PASSWORD, timeout=1.0)
    with pytest.raises(DeliveryRetry) as caught:
        channel.send(message())
    assert_no_secrets(str(caught.value))


def test_email_options_are_checked() -> None:
    with pytest.raises(ValidationError) as caught:
        EmailChannel("mail", "127.0.0.1", 25, "wb@example.com", ["trader@example.com"], starttls=True, ssl=True)
    assert caught.value.field == "notify.email.ssl"
    with pytest.raises(ValidationError) as caught:
        EmailChannel("mail", "127.0.0.1", 25, "wb@example.com", [])
    assert caught.value.field == "notify.email.recipients"
    text_flags: dict[str, Any] = {"starttls": "maybe"}  # settings read from text: bool("false") would be True
    with pytest.raises(ValidationError) as caught:
        EmailChannel("mail", "127.0.0.1", 25, "wb@example.com", ["a@example.com"], **text_flags)
    assert caught.value.field == "notify.email.starttls"
    text_flags = {"ssl": "false"}
    assert EmailChannel("mail", "127.0.0.1", 25, "wb@example.com", "a@example.com", **text_flags).ssl is False


# ---------------------------------------------------------------------------------------------------------------------
# Apprise


def test_apprise_json_alert_arrives(http_server: HttpServer) -> None:
    msg = message()
    channel = AppriseChannel("im", [f"json://127.0.0.1:{http_server.port}/apprise"], timeout=5.0)
    channel.send(msg)
    (request,) = http_server.requests
    assert request.path == "/apprise"
    sent = json.loads(request.body)
    assert sent["title"] == msg.title
    assert sent["message"] == msg.text


def test_apprise_server_error_asks_for_a_retry(http_server: HttpServer) -> None:
    http_server.mode = "500"
    channel = AppriseChannel("im", [f"json://bot:{PASSWORD}@127.0.0.1:{http_server.port}/apprise"], timeout=5.0)
    with pytest.raises(DeliveryRetry) as caught:
        channel.send(message())
    assert len(http_server.requests) == 1  # apprise made one attempt
    assert "500" in str(caught.value)
    assert_no_secrets(str(caught.value) + repr(channel))


# Apprise masks words that look random (``t...M``) on its own; an all-capitals token escapes that heuristic.
@pytest.mark.parametrize(("url", "token"), [
    (f"nonsense://{TOKEN}/x", TOKEN),
    ("nonsense://PLAINCAPSTOKEN/x", "PLAINCAPSTOKEN"),
    ("tgram://CAPSTOKENONLY", "CAPSTOKENONLY"),
    (f"not a url {TOKEN}", TOKEN),
    ("dingtalk://", "dingtalk://"),
])
def test_apprise_malformed_url_is_a_validation_error(url: str, token: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)  # apprise's TRACE level: it dumps parsed tokens there
    with pytest.raises(ValidationError) as caught:
        AppriseChannel("im", [url])
    assert caught.value.field == "notify.apprise"
    assert str(caught.value).startswith("notify.apprise: ")
    if token != url:
        assert token not in str(caught.value)
        assert token not in "\n".join(r.getMessage() for r in caplog.records)


def test_apprise_tokens_stay_out_of_its_log(caplog: pytest.LogCaptureFixture) -> None:
    tokens = [uuid.uuid4().hex for _ in range(4)]  # unseen by earlier tests: the log filter is process-wide
    caplog.set_level(1)
    channel = AppriseChannel("im", [f"dingtalk://{tokens[0]}/", f"wecombot://{tokens[1]}",
                                    f"tgram://123456789:{tokens[2]}/42"])
    with pytest.raises(ValidationError):
        AppriseChannel("im", [f"nonsense://{tokens[3]}"])  # logged verbatim by apprise at ERROR, unscrubbed
    lines = "\n".join(r.getMessage() for r in caplog.records)
    assert "unpacked as" in lines and "Unparseable URL" in lines  # apprise did log about these URLs
    assert not [t for t in tokens if t in lines]
    assert repr(channel) == "AppriseChannel(name='im', urls=['dingtalk://...', 'wecombot://...', 'tgram://...'])"


# ---------------------------------------------------------------------------------------------------------------------
# Factory


def test_build_channel(http_server: HttpServer) -> None:
    webhook = build_channel("webhook", "hook", url=http_server.url(), secret=None, timeout=2)
    assert isinstance(webhook, WebhookChannel) and webhook.kind == "webhook" and webhook.name == "hook"
    mail = build_channel("Email", "mail", host="127.0.0.1", port="2525", sender="wb@example.com",
                         recipients="a@example.com, b@example.com")
    assert isinstance(mail, EmailChannel) and mail.recipients == ["a@example.com", "b@example.com"]
    im = build_channel("apprise", "im", urls=[f"json://127.0.0.1:{http_server.port}/x"])
    assert isinstance(im, AppriseChannel) and im.kind == "apprise"


@pytest.mark.parametrize(("kind", "options", "field_name"), [
    ("sms", {}, "notify.kind"),
    ("webhook", {}, "notify.webhook.url"),
    ("webhook", {"url": None}, "notify.webhook.url"),
    ("webhook", {"url": "http://127.0.0.1/x", "secrt": "x"}, "notify.webhook.secrt"),
    ("email", {"host": "127.0.0.1", "port": 25, "sender": "wb@example.com"}, "notify.email.recipients"),
    ("apprise", {"urls": []}, "notify.apprise.urls"),
    ("webhook", {"url": "http://127.0.0.1/x", "timeout": 0}, "notify.webhook.timeout"),
])
def test_build_channel_names_the_bad_option(kind: str, options: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        build_channel(kind, "name", **options)
    assert caught.value.field == field_name
