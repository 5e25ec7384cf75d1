"""Format details of each parser on the recorded payloads, and the vectorised code normaliser agreeing with the one
scalar rule (normalize_code)."""

from __future__ import annotations

import numpy as np
import pytest
from test_feeds_support import RECORDED, TRUTH

from workbench.config import Settings
from workbench.errors import ValidationError
from workbench.feeds.eastmoney import parse_clist_page
from workbench.feeds.sina import parse_sina
from workbench.feeds.tencent import parse_tencent
from workbench.instruments import load_universe
from workbench.market import normalize_code, normalize_codes


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
    assert first.total == 8 and first.entries == 4 and first.rejected == 1
    halted = second.frame.set_index("code").loc["600868.SH"]
    assert bool(halted["suspended"]) and np.isnan(halted["last"]) and halted["volume"] == 0
    assert not parse_clist_page(b'{"rc":0,"data":{"total":8,"diff":[{"f2"').readable


def test_the_vectorised_normaliser_agrees_with_normalize_code():
    universe = load_universe(Settings().universe_path)["code"].str[:6].tolist()
    forms = [f"{ex.lower()}{c}" for c, ex in zip(universe, [normalize_code(c)[-2:] for c in universe], strict=True)]
    odd = ["600000.ss", "SH:600000", "1.600000", "0.000001", "0.830799", "sz600000", "1.000001", "x", "", "60000",
           "bj830799", "600000.XSHG", " 000001.sz ", "SZ000001", "9.600000"]
    raw = universe + forms + odd
    expected = []
    for value in raw:
        try:
            expected.append(normalize_code(value))
        except ValidationError:
            expected.append(None)
    assert normalize_codes(raw).tolist() == expected
