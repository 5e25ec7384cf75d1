"""Hypothesis fuzzing of every parser: 10,000 cases each (raw bytes plus near-format lines), no exception escapes,
and whatever comes out is a valid canonical snapshot."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_feeds_support import RECORDED, truth_ticks

from workbench.feeds.eastmoney import parse_eastmoney
from workbench.feeds.sina import parse_sina
from workbench.feeds.tencent import parse_tencent
from workbench.feeds.xtquant import parse_full_tick
from workbench.models import QUOTE_COLUMNS

RAW_CASES = 7_000  # + STRUCTURED_CASES = 10,000 per parser (raw bytes are cheap, near-format lines are not)
STRUCTURED_CASES = 3_000


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(result: tuple) -> None:
    frame, rejected = result
    assert list(frame.columns) == QUOTE_COLUMNS and rejected >= 0
    if len(frame):
        assert frame["code"].str.fullmatch(r"\d{6}\.(SH|SZ|BJ)").all() and frame["code"].is_unique
        assert (frame["prev_close"] > 0).all() and (frame["volume"] >= 0).all()
        traded = ~frame["suspended"]
        assert (frame.loc[traded, "last"] > 0).all() and frame.loc[frame["suspended"], "last"].isna().all()
        assert np.isfinite(frame["limit_up"]).all()


NUMBERS = st.one_of(
    st.sampled_from(["", "0", "0.00", "-", "10.13", "1e308", "1e400", "nan", "inf", "-5", "4.2", "99999999999999",
                     "20261125150003", "2026-11-25", "15:00:03", " 7 ", "1_000", "0x10", "\ufffd"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(max_size=6),
)
KEYS = st.sampled_from(["sh600000", "sz000001", "sz300750", "sh688981", "bj830799", "sh999999", "xx123456", "sh60000",
                        "SH600519", "sz000002", "bj920163", "bj838163", "sh920163"])


def recorded_fields(name: str, sep: str) -> list[list[str]]:
    text = (RECORDED / name).read_bytes().decode("gbk", errors="replace")
    return [line.split('"')[1].split(sep) for line in text.split("\n") if line.count('"') == 2]


TENCENT = recorded_fields("tencent.txt", "~")
SINA = recorded_fields("sina.txt", ",")
EASTMONEY = [e for n in (1, 2, 3)
             for e in json.loads((RECORDED / f"eastmoney_clist_p{n}.json").read_bytes())["data"]["diff"]]
TICKS = truth_ticks()


def mutate(draw: st.DrawFn, fields: list, values: st.SearchStrategy) -> list:
    """A recorded row with a few fields replaced, and fields dropped or added at the end (wrong field counts)."""
    out = list(fields)
    for _ in range(draw(st.integers(0, 4))):
        out[draw(st.integers(0, len(out) - 1))] = draw(values)
    size = draw(st.sampled_from([len(out)] * 4 + [0, 1, 11, 31, 32, 37, 38, 48, 49, 50, len(out) + 2]))
    return (out + [""] * size)[:size]


def _body(lines: list[str], cut: int | None) -> bytes:
    body = "\n".join(lines).encode("gbk", errors="replace")
    return body if cut is None else body[: cut % (len(body) + 1)]


@st.composite
def tencent_bodies(draw: st.DrawFn) -> bytes:
    lines = [f'v_{draw(KEYS)}="{"~".join(mutate(draw, draw(st.sampled_from(TENCENT)), NUMBERS))}";'
             for _ in range(draw(st.integers(1, 3)))]
    return _body(lines, draw(st.none() | st.integers(0, 10_000)))


@st.composite
def sina_bodies(draw: st.DrawFn) -> bytes:
    lines = [f'var hq_str_{draw(KEYS)}="{",".join(mutate(draw, draw(st.sampled_from(SINA)), NUMBERS))}";'
             for _ in range(draw(st.integers(1, 3)))]
    return _body(lines, draw(st.none() | st.integers(0, 10_000)))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | NUMBERS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


def mutate_entry(draw: st.DrawFn, entry: dict, keys: list[str]) -> dict | object:
    """A recorded entry with a few values replaced or removed; now and then not an object at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)
    out = dict(entry)
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            out[key] = draw(JSON_VALUES)
        else:
            out.pop(key, None)
    return out


@st.composite
def eastmoney_bodies(draw: st.DrawFn) -> bytes:
    entries = [mutate_entry(draw, draw(st.sampled_from(EASTMONEY)), ["f2", "f5", "f6", "f12", "f13", "f14", "f15",
                                                                      "f16", "f17", "f18", "f124"])
               for _ in range(draw(st.integers(0, 3)))]
    doc = {"rc": 0, "data": {"total": draw(st.sampled_from([8, None, -1, "8"])), "diff": entries}}
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return _body([text], draw(st.none() | st.integers(0, 10_000)))


@st.composite
def full_ticks(draw: st.DrawFn) -> dict:
    keys = ["time", "lastPrice", "open", "high", "low", "lastClose", "amount", "volume", "pvolume", "bidPrice",
            "askPrice", "bidVol", "askVol"]
    return {draw(st.sampled_from([*TICKS, "600000", "sh600000", "x", ""])): mutate_entry(draw, TICKS[code], keys)
            for code in draw(st.lists(st.sampled_from(list(TICKS)), max_size=3))}


@fuzz(RAW_CASES)
@given(st.binary(max_size=400))
def test_every_text_parser_survives_raw_bytes(body):
    check(parse_tencent(body))
    check(parse_sina(body))
    check(parse_eastmoney(body))


@fuzz(RAW_CASES)
@given(st.one_of(NUMBERS, st.none(), st.booleans(), st.floats(), st.lists(st.floats() | NUMBERS, max_size=6),
                 st.dictionaries(st.text(max_size=4) | st.sampled_from(["600000.SH", "sh600000"]),
                                 st.none() | st.floats() | NUMBERS, max_size=3)))
def test_the_xtquant_parser_survives_any_value(value):
    check(parse_full_tick(value if isinstance(value, dict) else {"600000.SH": value}))


@fuzz(STRUCTURED_CASES)
@given(tencent_bodies())
def test_tencent_parser_survives_near_format_lines(body):
    check(parse_tencent(body))


@fuzz(STRUCTURED_CASES)
@given(sina_bodies())
def test_sina_parser_survives_near_format_lines(body):
    check(parse_sina(body))


@fuzz(STRUCTURED_CASES)
@given(eastmoney_bodies())
def test_eastmoney_parser_survives_near_format_pages(body):
    check(parse_eastmoney(body))


@fuzz(STRUCTURED_CASES)
@given(full_ticks())
def test_xtquant_parser_survives_near_format_ticks(ticks):
    check(parse_full_tick(ticks))
