"""Watchlists (issue 16, part 1) as a user meets them: files of 通达信, 同花顺 and 东方财富 written here in their real
encodings and read back, lists made from codes, boards, ST names and a screen over stored daily bars, every change
audited, bad input refused by field and line with nothing changed; the API on a real server and the CLI on a file.
Real DuckDB files in tmp_path."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.test_api import TOKEN, Served, api, fields, settings  # noqa: F401 - the API tests' real server
from workbench import watchlists as wl
from workbench.calendar import TZ, TradingCalendar
from workbench.cli import app
from workbench.config import Settings
from workbench.control import Service
from workbench.errors import NotFound, ValidationError
from workbench.instruments import universe_from_frame
from workbench.remote import RemoteService
from workbench.store import ticks as tick_store
from workbench.store.db import Store

runner = CliRunner()
UNIVERSE = pd.DataFrame({
    "code": ["600519", "000001", "300750", "688981", "920017", "600666", "300555", "000002"],
    "name": ["贵州茅台", "平安银行", "宁德时代", "中芯国际", "北交样本", "*ST瑞德", "ST路通", "万科A"]})


@pytest.fixture
def service(tmp_path: Path) -> Service:
    return Service(Settings(db_path=tmp_path / "wl.duckdb"), actor="cli")


def audit(store: Store) -> list[tuple[str, str]]:
    with store.read() as con:
        return [tuple(r) for r in con.execute(
            "SELECT action, result FROM task_audit WHERE action LIKE 'watchlists.%' ORDER BY audit_id").fetchall()]


def stored(store: Store) -> dict[str, list[str]]:
    with store.read() as con:
        rows = con.execute("SELECT w.name, m.code FROM watchlists w LEFT JOIN watchlist_members m "
                           "USING (watchlist_id) ORDER BY w.name, m.position").fetchall()
    out: dict[str, list[str]] = {}
    for name, code in rows:
        out.setdefault(name, []).extend([] if code is None else [code])
    return out


def with_universe(service: Service) -> Service:
    with service.store.write() as con:
        tick_store.upsert_instruments(con, universe_from_frame(UNIVERSE))
    return service


# -- parsers on files in their real encodings ---------------------------------------------------------------------
def test_a_tdx_block_file_in_gbk_with_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "ZXG.blk"
    path.write_bytes("\r\n1600519\r\n0000001\r\n\r\n2920017\r\n2430017\r\n1600519\r\n".encode("gbk"))
    assert wl.parse_tdx(path.read_bytes()) == ["600519.SH", "000001.SZ", "920017.BJ"]  # 430017 is 920017: kept once
    assert wl.detect_format(path.read_bytes(), path.name) == "tdx"


def test_a_ths_export_with_a_gbk_header_and_name_column(tmp_path):
    path = tmp_path / "自选股.txt"
    text = "代码\t名称\t涨幅%\r\nSH600519\t贵州茅台\t1.2\r\nSZ000001\t平安银行\t-0.3\r\n300750.SZ\t宁德时代\t0\r\n" \
           "bj430017\t旧北交\t0\r\n"
    path.write_bytes(text.encode("gbk"))
    data = path.read_bytes()
    assert wl.parse_ths(data) == ["600519.SH", "000001.SZ", "300750.SZ", "920017.BJ"]
    assert wl.detect_format(data, path.name) == "ths"
    utf8_csv = "代码,名称\nSH600519,贵州茅台\n".encode()
    assert wl.parse_ths(utf8_csv) == ["600519.SH"]


def test_an_eastmoney_csv_whose_zeros_excel_stripped(tmp_path):
    path = tmp_path / "东方财富自选.csv"
    text = '序号,代码,名称,市场\r\n1,1,平安银行,深A\r\n2,"600519",贵州茅台,沪A\r\n3,="000002",万科A,深A\r\n' \
           "4,920017,北交样本,京A\r\n5,2,万科A,深A\r\n"
    path.write_bytes(text.encode("gbk"))
    data = path.read_bytes()
    assert wl.parse_eastmoney(data) == ["000001.SZ", "600519.SH", "000002.SZ", "920017.BJ"]
    assert wl.detect_format(data, path.name) == "eastmoney"
    other_headers = "股票代码(A股)\t所属市场\r\n430017\t京A\r\n 2\t深圳\r\n".encode("gbk")  # an old Beijing code
    assert wl.parse_eastmoney(other_headers) == ["920017.BJ", "000002.SZ"]


def test_plain_csv_by_its_code_column_or_its_first_column():
    assert wl.parse_csv(b"name,code\nMoutai,600519.SH\nPingan,000001\n") == ["600519.SH", "000001.SZ"]
    assert wl.parse_csv(b"600519\n000001\n") == ["600519.SH", "000001.SZ"]
    assert wl.parse_csv(b"") == []


@pytest.mark.parametrize(("parser", "data", "problems"), [
    (wl.parse_tdx, b"1600519\r\n9600519\r\n160051\r\n", ["line 2: '9600519' is not a 通达信 block entry",
                                                         "line 3: '160051' is not a 通达信 block entry"]),
    (wl.parse_tdx, b"1000905\r\n", ["line 1: '000905.SH' looks like an index code (000905.SH) but is not a known "
                                   "index"]),  # 1000001 is the SSE Composite (tests/test_indexes.py)
    (wl.parse_tdx, b"2830000\r\n", ["line 1: '830000.BJ' is an old Beijing code"]),  # not in the map: not guessed
    (wl.parse_eastmoney, "代码,市场\n600519,深A\n1,纽约\n".encode("gbk"),
     ["line 2: '600519.SZ': code 600519 belongs to SH, not SZ", "line 3: market '纽约'"]),
    (wl.parse_ths, "代码\t名称\nSH60051X\t坏\n\t空\n".encode("gbk"), ["line 2: 'SH60051X' is not a stock code",
                                                                   "line 3: no code in column 1"]),
    (wl.parse_csv, b"name,price\nx,1\n", ["line 1: a header without a code column"]),
    (wl.parse_csv, b"\xff\xfe\x00\x81", ["neither UTF-8 nor GBK"]),
])
def test_bad_lines_are_named_with_their_problem_and_none_is_dropped(parser, data, problems):
    with pytest.raises(ValidationError) as raised:
        parser(data)
    assert raised.value.field == "content"
    for problem in problems:
        assert problem in raised.value.problem, raised.value.problem


def test_many_bad_lines_are_counted_past_the_first_five():
    data = "".join(f"9{n:06d}\r\n" for n in range(8)).encode()
    with pytest.raises(ValidationError, match=r"line 5: .*; and 3 more$"):
        wl.parse_tdx(data)


@pytest.mark.parametrize("fmt", wl.FORMATS)
def test_every_format_round_trips_and_is_recognised(fmt):
    members = [("600519.SH", "贵州茅台"), ("000001.SZ", "平安银行"), ("920017.BJ", None), ("688981.SH", "中芯国际")]
    data = wl.write(members, fmt)
    assert wl.parse(data, fmt) == [code for code, _ in members]
    assert wl.detect_format(data, f"list{wl.EXTENSIONS[fmt]}") == fmt
    assert wl.parse(data, "auto") == [code for code, _ in members]


def test_the_tdx_writer_writes_market_digits_and_crlf():
    assert wl.write_tdx([("600519.SH", None), ("000001.SZ", None), ("920017.BJ", None)]) == \
        b"1600519\r\n0000001\r\n2920017\r\n"
    assert wl.write_ths([("600519.SH", "贵州茅台")]).decode("gbk") == "代码\t名称\r\nSH600519\t贵州茅台\r\n"


# -- lists made from the market ----------------------------------------------------------------------------------
def test_groups_use_the_board_and_st_classification():
    universe = universe_from_frame(UNIVERSE)
    assert wl.group_members(universe, "chinext") == ["300555.SZ", "300750.SZ"]
    assert wl.group_members(universe, "star") == ["688981.SH"]
    assert wl.group_members(universe, "beijing") == ["920017.BJ"]
    assert wl.group_members(universe, "main") == ["000001.SZ", "000002.SZ", "600519.SH", "600666.SH"]
    assert wl.group_members(universe, "ST") == ["300555.SZ", "600666.SH"]
    with pytest.raises(ValidationError, match="group: must be one of main"):
        wl.group_members(universe, "hs300")


def test_create_from_a_board_and_from_st_over_the_stored_universe(service):
    with pytest.raises(ValidationError, match="group: the instrument universe is empty"):
        service.create_watchlist("创业板", group="chinext")
    with_universe(service)
    assert [m["code"] for m in service.create_watchlist("创业板", group="chinext")["members"]] == [
        "300555.SZ", "300750.SZ"]
    st = service.create_watchlist("风险警示", group="st")
    assert [(m["code"], m["name"]) for m in st["members"]] == [("300555.SZ", "ST路通"), ("600666.SH", "*ST瑞德")]


def daily_bars(closes: dict[str, list[float]]) -> pd.DataFrame:
    """Daily bars (stamped 15:00, the session's end) ending on 2026-11-24, one close series per code."""
    days = TradingCalendar().sessions_in_range(dt.date(2026, 9, 1), dt.date(2026, 11, 24))
    frames = []
    for code, series in closes.items():
        chosen = days[-len(series):]
        close = np.asarray(series, dtype=float)
        frames.append(pd.DataFrame({
            "code": code, "freq": "1d", "ts": [dt.datetime.combine(d, dt.time(15), tzinfo=TZ) for d in chosen],
            "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
            "volume": 100_000, "amount": close * 100_000}))
    return pd.concat(frames, ignore_index=True)


def test_a_screen_holds_the_stocks_whose_rule_is_true_on_the_last_stored_bar(service):
    with_universe(service)
    rising = [10 + 0.1 * i for i in range(30)]
    falling = [20 - 0.1 * i for i in range(30)]
    crossed_back = [*rising[:-1], 5.0]  # above its average until the last day
    bars = daily_bars({"600519.SH": rising, "000001.SZ": falling, "300750.SZ": crossed_back,
                       "688981.SH": rising[:-1]})  # no bar on the last day (suspended): not a member
    bars.loc[bars["code"] == "688981.SH", "ts"] -= pd.Timedelta(days=1)
    with service.store.write() as con:
        tick_store.write_bars(con, bars)
    made = service.create_watchlist("强势", screen="close > sma(10)")
    assert [m["code"] for m in made["members"]] == ["600519.SH"]
    with pytest.raises(ValidationError) as bad:
        service.create_watchlist("坏", screen="close >> sma(10)")
    assert bad.value.field == "screen"
    assert "坏" not in stored(service.store)


def test_a_screen_without_daily_bars_says_so(service):
    with_universe(service)
    with pytest.raises(ValidationError, match="screen: no daily bars are stored"):
        service.create_watchlist("强势", screen="close > sma(10)")


# -- commands: audited, one transaction, nothing changed on bad input ---------------------------------------------
def test_create_add_remove_rename_delete_each_leave_an_audit_row(service):
    made = service.create_watchlist("核心", ["600519", "sz000001", "600519.SH"])
    assert [m["code"] for m in made["members"]] == ["600519.SH", "000001.SZ"] and made["created_by"] == "cli"
    assert service.add_to_watchlist("核心", ["300750", "600519"]) == ["300750.SZ"]
    assert service.add_to_watchlist("核心", ["600519"]) == []
    assert service.remove_from_watchlist("核心", ["000001"]) == ["000001.SZ"]
    renamed = service.rename_watchlist("核心", "core")
    assert [m["code"] for m in renamed["members"]] == ["600519.SH", "300750.SZ"]
    assert [m["position"] for m in renamed["members"]] == [1, 2]
    assert [(w["name"], w["count"]) for w in service.watchlists()] == [("core", 2)]
    assert service.delete_watchlist("core")["count"] == 2
    assert stored(service.store) == {}
    assert audit(service.store) == [("watchlists.create", "ok"), ("watchlists.add", "ok"), ("watchlists.add", "noop"),
                                    ("watchlists.remove", "ok"), ("watchlists.rename", "ok"),
                                    ("watchlists.delete", "ok")]


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: s.create_watchlist("核心", ["600519"]), "name"),             # in use
    (lambda s: s.create_watchlist("  ", ["600519"]), "name"),
    (lambda s: s.create_watchlist("a/b", ["600519"]), "name"),
    (lambda s: s.create_watchlist("新", ["600519", "12345X"]), "codes"),
    (lambda s: s.create_watchlist("新", ["600519"], group="st"), "group"),   # codes and a group
    (lambda s: s.add_to_watchlist("核心", ["999999"]), "codes"),
    (lambda s: s.add_to_watchlist("核心", []), "codes"),
    (lambda s: s.rename_watchlist("核心", "x" * 65), "new_name"),
    (lambda s: s.import_watchlist("新", b"1600519\r\n", "tdx2"), "format"),
    (lambda s: s.import_watchlist("新", b"1600519\r\nabc\r\n", "tdx"), "content"),
    (lambda s: s.export_watchlist("核心", "xls"), "format"),
])
def test_bad_input_names_the_field_and_changes_nothing(service, call, field):
    service.create_watchlist("核心", ["600519", "000001"])
    before = stored(service.store)
    with pytest.raises(ValidationError) as raised:
        call(service)
    assert raised.value.field == field, raised.value
    assert stored(service.store) == before


def test_a_missing_list_or_member_is_not_found_and_changes_nothing(service):
    service.create_watchlist("核心", ["600519"])
    for call in (lambda: service.watchlist("无"), lambda: service.delete_watchlist("无"),
                 lambda: service.add_to_watchlist("无", ["600519"]), lambda: service.rename_watchlist("无", "x"),
                 lambda: service.remove_from_watchlist("核心", ["600519", "000001"])):
        with pytest.raises(NotFound):
            call()
    assert stored(service.store) == {"核心": ["600519.SH"]}
    assert audit(service.store)[-1] == ("watchlists.remove", "error")


def test_import_then_export_gives_the_same_file_and_list(service):
    data = "代码\t名称\r\nSH600519\t贵州茅台\r\nSZ000001\t平安银行\r\n".encode("gbk")
    made = service.import_watchlist("同花顺", data, "auto", "自选股.txt")
    assert made["format"] == "ths" and [m["code"] for m in made["members"]] == ["600519.SH", "000001.SZ"]
    for fmt in wl.FORMATS:
        exported = service.export_watchlist("同花顺", fmt)
        assert service.import_watchlist(f"again-{fmt}", exported, fmt)["count"] == 2
        assert service.watchlist(f"again-{fmt}")["members"][0]["code"] == "600519.SH"
    with service.store.read() as con:
        detail = json.loads(con.execute("SELECT detail FROM task_audit WHERE action = 'watchlists.import' "
                                        "ORDER BY audit_id LIMIT 1").fetchone()[0])
    assert detail["read_as"] == "ths" and detail["members"] == ["600519.SH", "000001.SZ"]


# -- the API on a real server -------------------------------------------------------------------------------------
def test_the_api_routes_and_their_errors(api: Served):  # noqa: F811 - the fixture imported above
    c = api.client
    created = c.post("/api/v1/watchlists", json={"name": "核心 list", "codes": ["600519", "sz000001"]})
    assert created.status_code == 201, created.text
    assert [m["code"] for m in created.json()["members"]] == ["600519.SH", "000001.SZ"]
    assert c.get("/api/v1/watchlists").json()["items"][0]["count"] == 2
    one = c.get("/api/v1/watchlists/核心 list")
    assert one.status_code == 200 and one.json()["members"][1]["code"] == "000001.SZ"
    assert c.post("/api/v1/watchlists/核心 list/add", json={"codes": ["300750"]}).json() == {"added": ["300750.SZ"]}
    assert c.post("/api/v1/watchlists/核心 list/remove", json={"codes": ["000001"]}).json() == {
        "removed": ["000001.SZ"]}
    exported = c.get("/api/v1/watchlists/核心 list/export", params={"format": "tdx"})
    assert exported.status_code == 200 and exported.content == b"1600519\r\n0300750\r\n"
    assert "attachment" in exported.headers["content-disposition"]
    imported = c.post("/api/v1/watchlists/import", json={
        "name": "blk", "format": "auto", "filename": "ZXG.blk",
        "content_base64": base64.b64encode(exported.content).decode()})
    assert imported.status_code == 201 and imported.json()["format"] == "tdx"
    as_text = c.post("/api/v1/watchlists/import", json={"name": "text", "text": "code\n600519.SH\n"})
    assert as_text.status_code == 201 and as_text.json()["count"] == 1
    renamed = c.post("/api/v1/watchlists/text/rename", json={"new_name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    assert c.delete("/api/v1/watchlists/renamed").status_code == 200

    before = c.get("/api/v1/watchlists").json()
    for response, field in [
        (c.post("/api/v1/watchlists", json={"name": "x", "codes": ["12345X"]}), "codes"),
        (c.post("/api/v1/watchlists", json={"name": "核心 list"}), "name"),
        (c.post("/api/v1/watchlists", json={"codes": []}), "name"),
        (c.post("/api/v1/watchlists", json={"name": "x", "group": "hs300"}), "group"),
        (c.post("/api/v1/watchlists/核心 list/add", json={"codes": ["99"]}), "codes"),
        (c.post("/api/v1/watchlists/import", json={"name": "y", "text": "1600519\r\nabc\r\n", "format": "tdx"}),
         "content"),
        (c.post("/api/v1/watchlists/import", json={"name": "y"}), "content"),
        (c.post("/api/v1/watchlists/import", json={"name": "y", "content_base64": "***"}), "content_base64"),
        (c.get("/api/v1/watchlists/核心 list/export", params={"format": "xls"}), "format"),
    ]:
        assert response.status_code == 422, response.text
        assert fields(response) == [field]
    for response in (c.get("/api/v1/watchlists/none"), c.delete("/api/v1/watchlists/none"),
                     c.post("/api/v1/watchlists/none/add", json={"codes": ["600519"]}),
                     c.get("/api/v1/watchlists/none/export")):
        assert response.status_code == 404 and fields(response) == ["name"]
    assert c.get("/api/v1/watchlists").json() == before


def test_remote_service_gives_what_service_gives(api: Served):  # noqa: F811 - the fixture imported above
    remote = RemoteService(api.server.url, TOKEN, actor="notebook")
    made = remote.create_watchlist("a?b #1", ["600519", "000001"])
    assert made == api.service.watchlist("a?b #1")
    assert remote.add_to_watchlist("a?b #1", ["300750"]) == ["300750.SZ"]
    assert remote.remove_from_watchlist("a?b #1", ["000001"]) == ["000001.SZ"]
    assert remote.export_watchlist("a?b #1", "ths") == api.service.export_watchlist("a?b #1", "ths")
    assert remote.import_watchlist("copy", remote.export_watchlist("a?b #1", "eastmoney"))["format"] == "eastmoney"
    assert remote.rename_watchlist("copy", "副本")["name"] == "副本"
    assert remote.watchlists() == api.service.watchlists()
    assert remote.delete_watchlist("副本")["count"] == 2
    with pytest.raises(ValidationError) as bad:
        remote.create_watchlist("x", ["12345X"])
    assert bad.value.field == "codes"
    with pytest.raises(NotFound, match="no watchlist 'none'"):
        remote.watchlist("none")
    with api.store.read() as con:
        actors = {r[0] for r in con.execute("SELECT actor FROM task_audit WHERE action LIKE 'watchlists.%'")
                  .fetchall()}
    assert actors == {"notebook"}


# -- the CLI on a file ------------------------------------------------------------------------------------------
def cli(db: Path, *args: str):
    return runner.invoke(app, [*args, "--db", str(db)])


def test_the_cli_without_a_server(tmp_path):
    db = tmp_path / "cli.duckdb"
    made = cli(db, "watchlists", "create", "核心", "600519", "sz000001")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == {"action": "create", "name": "核心", "count": 2,
                                       "codes": ["600519.SH", "000001.SZ"]}
    assert json.loads(cli(db, "watchlists", "add", "核心", "300750").stdout)["added"] == ["300750.SZ"]
    shown = json.loads(cli(db, "watchlists", "show", "核心", "--json").stdout)
    assert [m["code"] for m in shown["members"]] == ["600519.SH", "000001.SZ", "300750.SZ"]
    assert "600519.SH" in cli(db, "watchlists", "show", "核心").stdout
    assert json.loads(cli(db, "watchlists", "list", "--json").stdout)[0]["count"] == 3
    assert "核心" in cli(db, "watchlists", "list").stdout

    blk = tmp_path / "ZXG.blk"
    exported = cli(db, "watchlists", "export", "核心", "--format", "tdx", "-o", str(blk))
    assert exported.exit_code == 0, exported.output
    assert blk.read_bytes() == b"1600519\r\n0000001\r\n0300750\r\n"
    imported = cli(db, "watchlists", "import", str(blk))  # auto, named after the file
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout) | {"codes": None} == {"action": "import", "name": "ZXG", "count": 3,
                                                             "codes": None, "format": "tdx"}
    to_stdout = cli(db, "watchlists", "export", "ZXG", "--format", "csv")
    assert to_stdout.stdout == "code,name\n600519.SH,\n000001.SZ,\n300750.SZ,\n"

    bad = tmp_path / "bad.csv"
    bad.write_bytes("代码,名称,市场\r\n1,平安银行,深A\r\n60051,坏,沪A\r\n".encode("gbk"))
    refused = cli(db, "watchlists", "import", str(bad), "--format", "eastmoney", "--name", "坏")
    assert refused.exit_code == 2 and refused.stderr.startswith("error: content: line 3: "), refused.stderr
    assert cli(db, "watchlists", "import", str(tmp_path / "none.blk")).exit_code == 2
    assert cli(db, "watchlists", "add", "核心", "12345X").exit_code == 2
    missing = cli(db, "watchlists", "remove", "核心", "688981")
    assert missing.exit_code == 3 and "688981.SH is not in watchlist" in missing.stderr
    assert cli(db, "watchlists", "rename", "ZXG", "通达信").exit_code == 0
    assert json.loads(cli(db, "watchlists", "delete", "通达信").stdout)["count"] == 3
    assert cli(db, "watchlists", "delete", "通达信").exit_code == 3
    assert stored(Store(db)) == {"核心": ["600519.SH", "000001.SZ", "300750.SZ"]}
