"""Format details of each parser on the recorded payloads, and the vectorised code normaliser agreeing with the one
scalar rule (normalize_code)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_feeds_support import RECORDED, TRUTH

from workbench.config import Settings
from workbench.errors import ValidationError
from workbench.feeds.eastmoney import parse_clist_page
from workbench.feeds.sina import parse_sina
from workbench.feeds.tencent import parse_tencent
from workbench.instruments import load_universe
from workbench.market import bse_code_map, codes_from_parts, normalize_code, normalize_codes


def test_tencent_short_and_long_lines_and_what_is_rejected():
    body = (RECORDED / "tencent.txt").read_bytes()
    lines = {len(line.split(b"~")) for line in body.split(b"\n") if b'="' in line}
    assert {50, 88} <= lines, "the recording holds the ~50- and ~85-field variants"
    frame, rejected = parse_tencent(body)
    assert rejected == 3, "a truncated line, an 11-field line under a full key and a GBK-garbage line"
    moutai = frame.set_index("code").loc["600519.SH"]
    assert moutai["limit_up"] == 1556.5 and moutai["amount"] == pytest.approx(3_322_334_455.0)
    short = b"\n".join(line[: line.index(b"~1.12")] + b'";' if b"600000" in line else b""
                       for line in body.split(b"\n"))
    computed, _ = parse_tencent(short)
    assert computed["limit_up"].tolist() == [11.06], "limits computed from the previous close when absent"
    assert frame["name"].tolist()[0] == "浦发银行", "GBK decoded"


def test_sina_counts_empty_strings_and_reads_shares():
    frame, rejected = parse_sina((RECORDED / "sina.txt").read_bytes())
    assert rejected == 2 and len(frame) == len(TRUTH)
    assert frame.set_index("code").loc["600000.SH", "bid1_volume"] == 30_000, "Sina's book is in shares already"


def test_eastmoney_pages_report_their_total_and_dashes_mean_suspended():
    first = parse_clist_page((RECORDED / "eastmoney_clist_p1.json").read_bytes())
    second = parse_clist_page((RECORDED / "eastmoney_clist_p2.json").read_bytes())
    assert first.total == 9 and first.entries == 4 and first.rejected == 1
    halted = second.frame.set_index("code").loc["600868.SH"]
    assert bool(halted["suspended"]) and np.isnan(halted["last"]) and halted["volume"] == 0
    assert not parse_clist_page(b'{"rc":0,"data":{"total":9,"diff":[{"f2"').readable


def test_tencent_reads_the_turnover_rate_from_field_38_in_percent():
    """The recorded lines give 0.14 in field 38; a crafted 7.35 is read as 7.35 %, garbage and a line that ends at
    the amount (field 37) read as unknown."""
    body = (RECORDED / "tencent.txt").read_bytes()
    frame = parse_tencent(body)[0].set_index("code")
    assert frame.loc["600000.SH", "turnover"] == pytest.approx(0.14)
    assert frame.loc["600519.SH", "turnover"] == pytest.approx(0.14), "the ~50-field variant has field 38 too"
    lines = [line for line in body.split(b"\n") if line.startswith(b"v_sh600000=")]
    fields = lines[0].split(b"~")
    hot = b"~".join([*fields[:38], b"7.35", *fields[39:]])
    garbage = b"~".join([*fields[:38], b"abc", *fields[39:]]).replace(b"sh600000", b"sz000001")
    crafted = parse_tencent(hot + b"\n" + garbage)[0].set_index("code")
    assert crafted.loc["600000.SH", "turnover"] == pytest.approx(7.35)
    assert np.isnan(crafted.loc["000001.SZ", "turnover"])
    short = parse_tencent(b"~".join(fields[:38]) + b'";')[0]
    assert len(short) == 1 and np.isnan(short["turnover"].iloc[0])


def test_eastmoney_reads_the_turnover_rate_from_f8_in_percent_and_sina_gives_none():
    """With fltt=2 the clist's f8 is the plain percentage (1.23 is 1.23 %, not x100); a dash is unknown."""
    first = parse_clist_page((RECORDED / "eastmoney_clist_p1.json").read_bytes()).frame.set_index("code")
    assert first.loc["600000.SH", "turnover"] == pytest.approx(0.14)
    halted = parse_clist_page((RECORDED / "eastmoney_clist_p2.json").read_bytes()).frame.set_index("code")
    assert np.isnan(halted.loc["600868.SH", "turnover"]), "f8 '-' on a suspended stock"
    doc = json.loads((RECORDED / "eastmoney_clist_p1.json").read_bytes())
    doc["data"]["diff"][0]["f8"] = 6.02
    doc["data"]["diff"][1]["f8"] = -3
    crafted = parse_clist_page(json.dumps(doc).encode()).frame.set_index("code")
    assert crafted.loc["600000.SH", "turnover"] == pytest.approx(6.02)
    assert np.isnan(crafted.loc["000001.SZ", "turnover"]), "a negative rate is garbage"
    sina = parse_sina((RECORDED / "sina.txt").read_bytes())[0]
    assert len(sina) and sina["turnover"].isna().all()


def _beijing(frame) -> dict:
    assert "920163.SZ" not in set(frame["code"])
    return frame.set_index("code").loc["920163.BJ"].to_dict()


def test_a_beijing_line_from_each_vendor_is_a_920_bj_row_in_shares_with_30_percent_limits():
    """The recorded bj920163 lines: Tencent in lots with its own limits, Sina in shares with a longer line than
    SH/SZ ones (limits computed), Eastmoney in lots with market f13=0 (which is Beijing's as well as Shenzhen's)."""
    tencent = _beijing(parse_tencent((RECORDED / "tencent.txt").read_bytes())[0])
    sina = _beijing(parse_sina((RECORDED / "sina.txt").read_bytes())[0])
    eastmoney = _beijing(parse_clist_page((RECORDED / "eastmoney_clist_p3.json").read_bytes()).frame)
    last, prev, shares, up, down, _ = TRUTH["920163.BJ"]
    for row in (tencent, sina, eastmoney):
        assert (row["last"], row["prev_close"], row["volume"]) == (last, prev, shares)
        assert (row["limit_up"], row["limit_down"]) == (up, down) == (round(prev * 1.3, 2), round(prev * 0.7, 2))
        assert row["name"] == "方大新材"
    assert tencent["bid1_volume"] == 300 * 100 and sina["bid1_volume"] == 30_000, "lots vs shares"


def test_eastmoney_market_0_is_shenzhen_or_beijing_by_the_code_and_market_1_is_never_beijing():
    entry = json.loads((RECORDED / "eastmoney_clist_p3.json").read_bytes())["data"]["diff"][0]
    diff = [entry, {**entry, "f12": "838163"}, {**entry, "f12": "831167"}, {**entry, "f12": "000001"},
            {**entry, "f12": "920163", "f13": 1}]
    page = parse_clist_page(json.dumps({"rc": 0, "data": {"total": 5, "diff": diff}}).encode())
    assert page.frame["code"].tolist() == ["920163.BJ", "000001.SZ"], "838163 is 920163 again: the later row wins"
    assert page.rejected == 3, "a duplicate, an old code with no known 920 code, a Beijing code under Shanghai"


def test_the_vectorised_normaliser_agrees_with_normalize_code():
    universe = load_universe(Settings().universe_path)["code"].str[:6].tolist()
    forms = [f"{ex.lower()}{c}" for c, ex in zip(universe, [normalize_code(c)[-2:] for c in universe], strict=True)]
    odd = ["600000.ss", "SH:600000", "1.600000", "0.000001", "0.830799", "sz600000", "1.000001", "x", "", "60000",
           "bj830799", "600000.XSHG", " 000001.sz ", "SZ000001", "9.600000"]
    old_beijing = [f"{prefix}{code}{suffix}" for code in [*bse_code_map(), "831167", "873167", "430478", "899050"]
                   for prefix, suffix in (("", ""), ("bj", ""), ("", ".BJ"), ("0.", ""), ("BJ:", ""), ("1.", ""),
                                          ("sz", ""), ("", ".SH"))]
    beijing = ["920163", "bj920163", "920163.BJ", "0.920163", "1.920163", "sh920163", "920163.SZ", "BJ:920163"]
    raw = universe + forms + odd + old_beijing + beijing
    expected = [_scalar(value) for value in raw]
    assert normalize_codes(raw).tolist() == expected
    assert "920163.BJ" in expected and expected.count(None) > len(odd), "both mapped and refused codes are tried"


def _scalar(value: str) -> str | None:
    try:
        return normalize_code(value)
    except ValidationError:
        return None


def test_codes_from_parts_agrees_with_normalize_code_on_every_vendor_market():
    """Eastmoney hands over (f12, f13) pairs, other vendors (code, market letters): each pair read as one spelling."""
    code6 = ["600000", "000001", "920163", "838163", "831167", "300750", "688981", "12345", "abcdef"]
    markets = ["1", "0", "SH", "SZ", "BJ", "bj", "", "7"]
    pairs = [(c, m) for c in code6 for m in markets]
    got = codes_from_parts(np.array([c for c, _ in pairs]), np.array([m for _, m in pairs])).tolist()
    spelt = [f"{m}.{c}" if m.isdigit() else f"{c}.{m}" if m else c for c, m in pairs]
    assert got == [_scalar(text) for text in spelt]
