"""SQL over Quack with real parts: a server process that owns a real DuckDB file and keeps writing, and a client
(``workbench.connect()``) in this process that holds its connection for the whole test."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

import workbench
from tests.conftest import dies_with_parent
from workbench.advert import advert_path, read_advert, remove_advert, write_advert
from workbench.client import is_server_gone
from workbench.errors import ServerGone, ValidationError, WorkbenchError
from workbench.quack import check_token, load_extensions, new_token, serve_sql
from workbench.store.db import Store

SERVER = Path(__file__).with_name("quack_server.py")
ROOT = SERVER.parents[1]
HEARTBEATS = "SELECT count(*) FROM events WHERE event_type = 'heartbeat'"

pytestmark = pytest.mark.timeout(180)


class Server:
    """One real server process (tests/quack_server.py) on a DuckDB file; dies with the test process."""

    def __init__(self, db: Path, log_dir: Path) -> None:
        self.db = db
        self.stderr = (log_dir / f"server-{time.monotonic_ns()}.err").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), str(db)], cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, preexec_fn=dies_with_parent,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            advert = read_advert(self.db)
            if advert is not None and advert.pid == self.proc.pid:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.finish()
        raise AssertionError(f"server not ready (rc {self.proc.returncode}): {self._stderr_text()}")

    def stop(self, timeout: float = 30.0) -> dict[str, float]:
        """SIGTERM, wait, and return its write statistics."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=timeout)
        self.stderr.close()
        assert self.proc.returncode == 0, self._stderr_text()
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def finish(self) -> None:
        """Whatever happened, the process is gone and waited for."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.stderr.close()

    def _stderr_text(self) -> str:
        self.stderr.flush()
        return Path(self.stderr.name).read_text()[-2000:]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "wb.duckdb"


@pytest.fixture
def servers(db: Path, tmp_path: Path) -> Iterator[Callable[[], Server]]:
    started: list[Server] = []

    def start() -> Server:
        server = Server(db, tmp_path)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.finish()


def _count(con: object) -> int:
    return int(con.execute(HEARTBEATS).fetchone()[0])  # type: ignore[attr-defined]


def test_a_held_client_reads_while_the_server_keeps_writing(db: Path, servers: Callable[[], Server]) -> None:
    server = servers()
    with workbench.connect(db) as con:
        assert con.mode == "server"
        assert con.execute("SELECT count(*) FROM monitor_tasks").fetchone() == (0,)  # `USE wb`: plain names work
        counts: list[int] = []
        latencies: list[float] = []
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            counts.append(_count(con))
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)
        frame = con.sql("SELECT seq, ts, payload FROM events ORDER BY seq DESC LIMIT 5").df()
    stats = server.stop()
    assert counts == sorted(counts), "a reader saw rows disappear"
    assert counts[-1] - counts[0] >= 15, f"the client saw too few new rows: {counts[0]} -> {counts[-1]}"
    assert len(frame) == 5 and str(frame["ts"].dt.tz) == "Asia/Shanghai"
    assert stats["writes"] >= 20, stats  # the server kept writing while the client held its connection
    latencies.sort()
    print(f"client query p50 {latencies[len(latencies) // 2]:.1f} ms, p95 {latencies[int(len(latencies) * .95)]:.1f}"
          f" ms over {len(latencies)}; server write p50 {stats['p50_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms")


def test_the_token_is_required(db: Path, servers: Callable[[], Server]) -> None:
    servers()
    advert = read_advert(db)
    assert advert is not None

    def attach(token: str | None) -> int:
        con = duckdb.connect()
        try:
            load_extensions(con)
            if token is not None:
                con.execute("CREATE SECRET (TYPE quack, TOKEN ?)", [token])
            con.execute(f"ATTACH '{advert.sql_uri}' AS wb")  # refused here without the right token
            return int(con.execute("SELECT count(*) FROM wb.events").fetchone()[0])
        finally:
            con.close()

    with pytest.raises(duckdb.Error, match="authentication token"):
        attach(None)
    with pytest.raises(duckdb.Error):
        attach(new_token())
    with pytest.raises(duckdb.Error):
        attach(advert.token[:-1])
    assert attach(advert.token) >= 0


def test_the_advert_is_owner_only_atomic_and_a_dead_pid_reads_as_none(tmp_path: Path) -> None:
    db = tmp_path / "wb.duckdb"
    token = new_token()
    path = write_advert(db, "http://127.0.0.1:8765", "127.0.0.1:47311", token)
    assert path == advert_path(db) == tmp_path / "wb.duckdb.server.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    advert = read_advert(db)
    assert advert is not None and advert.pid == os.getpid() and advert.token == token
    assert advert.sql_uri == "quack:127.0.0.1:47311"
    assert token not in repr(advert)

    gone = subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=dies_with_parent)
    gone.wait(timeout=30)
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "pid": gone.pid, "pid_started": None}))
    assert read_advert(db) is None  # a stale file after kill -9
    path.write_text(json.dumps({**raw, "pid_started": (raw["pid_started"] or 0) + 1}))
    assert read_advert(db) is None  # our pid, but another process's start time: a reused pid
    path.write_text("{not json")
    assert read_advert(db) is None

    write_advert(db, "http://127.0.0.1:8765", "127.0.0.1:47311", token)
    remove_advert(db)
    assert not path.exists()
    remove_advert(db)  # idempotent


def test_a_killed_server_is_one_line_and_the_same_connection_works_when_it_is_back(
    db: Path, servers: Callable[[], Server]
) -> None:
    first = servers()
    con = workbench.connect(db)
    try:
        before = _count(con)
        first.kill()
        assert advert_path(db).exists() and read_advert(db) is None  # kill -9 leaves a stale advert
        for _ in range(2):  # and stays one line while no server is back
            with pytest.raises(ServerGone) as gone:
                _count(con)
            message = str(gone.value)
            assert "\n" not in message and str(db) in message and "workbench server" in message
            assert gone.value.__cause__ is None  # no chain: DuckDB's HTTP error is not shown
            assert gone.value.__context__ is None or gone.value.__suppress_context__
            assert isinstance(gone.value, WorkbenchError)
            assert gone.value._render_traceback_() == [f"ServerGone: {message}"]

        servers()
        assert _count(con) >= before  # the held connection re-attached by itself
        with workbench.connect(db) as fresh:
            assert fresh.mode == "server" and _count(fresh) >= before
    finally:
        con.close()


def test_without_a_server_connect_reads_the_file_read_only(db: Path) -> None:
    Store(db).open()
    with workbench.connect(db) as con:
        assert con.mode == "file" and con.address is None
        assert con.execute("SELECT count(*) FROM monitor_tasks").fetchone() == (0,)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE x (i INTEGER)")
    with pytest.raises(WorkbenchError, match="does not exist"):
        workbench.connect(db.with_name("missing.duckdb"))


def test_serve_and_stop_in_process_never_log_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = duckdb.connect()
    server.execute("CREATE TABLE t AS SELECT range AS i FROM range(3)")
    endpoint = serve_sql(server)
    client = duckdb.connect()
    try:
        assert endpoint.running and endpoint.host == "127.0.0.1" and endpoint.port > 0
        assert endpoint.token not in repr(endpoint)
        load_extensions(client)
        client.execute("CREATE SECRET (TYPE quack, TOKEN ?)", [endpoint.token])
        client.execute(f"ATTACH '{endpoint.uri}' AS wb")
        assert client.execute("SELECT count(*) FROM wb.t").fetchone() == (3,)
        endpoint.stop()
        endpoint.stop()  # idempotent
        assert not endpoint.running
        with pytest.raises(duckdb.Error) as gone:
            client.execute("SELECT count(*) FROM wb.t").fetchone()
        assert is_server_gone(gone.value)
    finally:
        endpoint.stop()
        client.close()
        server.close()
    assert endpoint.token not in caplog.text


@pytest.mark.parametrize("token", ["short", "has space in it....", "quote'inside_the_token", "x" * 300])
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="token"):
        check_token(token)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org", "::1"])
def test_the_endpoint_listens_on_loopback_only(host: str) -> None:
    con = duckdb.connect()
    try:
        with pytest.raises(ValidationError, match="host"):
            serve_sql(con, host=host)
    finally:
        con.close()
