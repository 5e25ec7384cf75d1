"""Parsing a whole-market quote payload (5,447 stocks) per source: the vectorised parsers vs a per-line pure-Python
split parser (the peer), both producing the same canonical snapshot.

    .venv/bin/python bench/bench_parse.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workbench.calendar import TZ  # noqa: E402
from workbench.feeds.eastmoney import parse_eastmoney  # noqa: E402
from workbench.feeds.sina import parse_sina  # noqa: E402
from workbench.feeds.tencent import parse_tencent  # noqa: E402
from workbench.limits import limit_prices, limit_ratios  # noqa: E402
from workbench.market import boards_of, normalize_code, risk_warnings  # noqa: E402
from workbench.models import BOOK_COLUMNS, QUOTE_COLUMNS, QUOTE_DTYPES  # noqa: E402

RUNS = 7


# --- payloads in the wire formats --------------------------------------------------------------------------------
def market() -> pd.DataFrame:
    universe = pd.read_csv(ROOT / "data/samples/universe_2026-10-22.csv", dtype=str)
    rng = np.random.default_rng(7)
    n = len(universe)
    prev = np.round(np.exp(rng.uniform(np.log(3), np.log(80), n)), 2)
    last = np.round(prev * (1 + rng.normal(0, 0.02, n)), 2)
    halted = rng.random(n) < 0.005
    last[halted] = 0.0
    return pd.DataFrame({"code": universe["code"], "ex": universe["exchange"].str.lower(), "name": universe["name"],
                         "prev": prev, "last": last, "lots": rng.integers(1_000, 2_000_000, n)})


def tencent_payload(m: pd.DataFrame) -> bytes:
    lines = []
    for r in m.itertuples():
        p = r.last
        f = ["1" if r.ex == "sh" else "51", r.name, r.code, f"{p:.2f}", f"{r.prev:.2f}", f"{p:.2f}", str(r.lots),
             "0", "0"]
        for i in range(5):
            f += [f"{max(p - 0.01 * i, 0):.2f}", str(100 + i)]
        for i in range(5):
            f += [f"{p + 0.01 * (i + 1) if p else 0:.2f}", str(200 + i)]
        f += ["", "20261125150003", "0.00", "0.00", f"{p * 1.01:.2f}", f"{p * 0.99:.2f}", f"{p:.2f}/{r.lots}/1",
              str(r.lots), f"{r.lots * p / 100:.4f}", "0.14", "5.12", "", f"{p:.2f}", f"{p:.2f}", "1.89", "1", "1",
              "0.43", f"{r.prev * 1.1:.2f}", f"{r.prev * 0.9:.2f}", "1.12"] + ["0"] * 38
        lines.append(f'v_{r.ex}{r.code}="{"~".join(f)}";')
    return "\n".join(lines).encode("gbk", errors="replace")


def sina_payload(m: pd.DataFrame) -> bytes:
    lines = []
    for r in m.itertuples():
        p = r.last
        f = [r.name, f"{p:.3f}", f"{r.prev:.3f}", f"{p:.3f}", f"{p * 1.01:.3f}", f"{p * 0.99:.3f}", f"{p:.3f}",
             f"{p:.3f}", str(r.lots * 100), f"{r.lots * 100 * p:.3f}"]
        for i in range(5):
            f += [str(100 * (i + 1)), f"{max(p - 0.01 * i, 0):.3f}"]
        for i in range(5):
            f += [str(100 * (i + 1)), f"{p + 0.01 * (i + 1) if p else 0:.3f}"]
        f += ["2026-11-25", "15:00:03", "00", ""]
        lines.append(f'var hq_str_{r.ex}{r.code}="{",".join(f)}";')
    return "\n".join(lines).encode("gbk", errors="replace")


def eastmoney_payload(m: pd.DataFrame) -> bytes:
    diff = []
    for r in m.itertuples():
        p: float | str = r.last if r.last else "-"
        diff.append({"f2": p, "f3": 0.1, "f4": 0.01, "f5": r.lots if r.last else "-", "f6": r.lots * 100 * r.last,
                     "f12": r.code, "f13": 1 if r.ex == "sh" else 0, "f14": r.name,
                     "f15": r.last * 1.01 if r.last else "-", "f16": r.last * 0.99 if r.last else "-",
                     "f17": p, "f18": r.prev, "f8": 0.14 if r.last else "-", "f124": 1795590003})
    return json.dumps({"rc": 0, "data": {"total": len(diff), "diff": diff}}, ensure_ascii=False).encode()


# --- the peer: a per-line pure-Python split parser producing the same canonical rows ---------------------------
def _num(text: object) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _row(code: str, name: str, ts: pd.Timestamp, v: dict[str, float]) -> dict[str, object] | None:
    if not (v["prev_close"] > 0):
        return None
    halted = not (v["last"] > 0)
    up, down = v.get("limit_up", 0.0), v.get("limit_down", 0.0)
    if not (up > 0 and down > 0):
        ups, downs = limit_prices(v["prev_close"], *limit_ratios(boards_of([code]), risk_warnings([name]), ts.date()))
        up, down = ups[0], downs[0]
    row: dict[str, object] = {"code": code, "name": name, "ts": ts, "suspended": halted,
                              "limit_up": float(up), "limit_down": float(down)}
    for k in ("last", "open", "high", "low"):
        row[k] = float("nan") if halted or not v[k] > 0 else v[k]
    volume, amount = v["volume"], v["amount"]
    row["prev_close"] = v["prev_close"]
    row["volume"] = int(volume) if volume == volume else 0
    row["amount"] = amount if amount == amount else 0.0
    rate = v.get("turnover", float("nan"))
    row["turnover"] = rate if 0 <= rate < 10_000 else float("nan")
    for c in BOOK_COLUMNS:
        x = v.get(c, float("nan"))
        row[c] = (int(x) if x == x and x > 0 else 0) if c.endswith("_volume") else (x if x > 0 else float("nan"))
    return row


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=QUOTE_COLUMNS).astype(
        {c: t for c, t in QUOTE_DTYPES.items() if c not in ("code", "name")})


def naive_tencent(body: bytes) -> pd.DataFrame:
    rows = []
    for line in body.decode("gbk", errors="replace").split("\n"):
        key, _, rest = line.partition('="')
        f = rest.rstrip('";').split("~")
        if len(f) < 38:
            continue
        v = {"last": _num(f[3]), "prev_close": _num(f[4]), "open": _num(f[5]), "volume": _num(f[6]) * 100,
             "high": _num(f[33]), "low": _num(f[34]), "amount": round(_num(f[37]) * 10_000, 2)}
        if len(f) > 38:
            v["turnover"] = _num(f[38])
        if len(f) >= 49:
            v["limit_up"], v["limit_down"] = _num(f[47]), _num(f[48])
        for i in range(5):
            v[f"bid{i + 1}_price"], v[f"bid{i + 1}_volume"] = _num(f[9 + 2 * i]), _num(f[10 + 2 * i]) * 100
            v[f"ask{i + 1}_price"], v[f"ask{i + 1}_volume"] = _num(f[19 + 2 * i]), _num(f[20 + 2 * i]) * 100
        ts = pd.Timestamp(f[30][:8] + "T" + f[30][8:], tz=TZ.key)
        row = _row(normalize_code(key[2:]), f[1], ts, v)
        if row:
            rows.append(row)
    return _frame(rows)


def naive_sina(body: bytes) -> pd.DataFrame:
    rows = []
    for line in body.decode("gbk", errors="replace").split("\n"):
        key, _, rest = line.partition('="')
        f = rest.rstrip('";').split(",")
        if len(f) < 32:
            continue
        v = {"open": _num(f[1]), "prev_close": _num(f[2]), "last": _num(f[3]), "high": _num(f[4]), "low": _num(f[5]),
             "volume": _num(f[8]), "amount": _num(f[9])}
        for i in range(5):
            v[f"bid{i + 1}_volume"], v[f"bid{i + 1}_price"] = _num(f[10 + 2 * i]), _num(f[11 + 2 * i])
            v[f"ask{i + 1}_volume"], v[f"ask{i + 1}_price"] = _num(f[20 + 2 * i]), _num(f[21 + 2 * i])
        ts = pd.Timestamp(f"{f[30]} {f[31]}", tz=TZ.key)
        row = _row(normalize_code(key[-8:]), f[0], ts, v)
        if row:
            rows.append(row)
    return _frame(rows)


def naive_eastmoney(body: bytes) -> pd.DataFrame:
    rows = []
    for d in json.loads(body)["data"]["diff"]:
        v = {"last": _num(d.get("f2")), "volume": _num(d.get("f5")) * 100, "amount": _num(d.get("f6")),
             "high": _num(d.get("f15")), "low": _num(d.get("f16")), "open": _num(d.get("f17")),
             "prev_close": _num(d.get("f18")), "turnover": _num(d.get("f8"))}
        ts = pd.Timestamp(int(d["f124"]), unit="s", tz="UTC").tz_convert(TZ.key)
        row = _row(normalize_code(f"{d['f13']}.{d['f12']}"), d.get("f14", ""), ts, v)
        if row:
            rows.append(row)
    return _frame(rows)


def median_seconds(fn: Callable[[bytes], object], body: bytes) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    m = market()
    cases = [("tencent", tencent_payload(m), parse_tencent, naive_tencent),
             ("sina", sina_payload(m), parse_sina, naive_sina),
             ("eastmoney", eastmoney_payload(m), parse_eastmoney, naive_eastmoney)]
    print(f"whole-market payload of {len(m):,} stocks, median of {RUNS} runs")
    print(f"{'source':<10} {'bytes':>10} {'vectorised':>12} {'per-line':>10} {'ratio':>7}  rows")
    for name, body, fast, naive in cases:
        frame, rejected = fast(body)
        peer = naive(body)
        assert len(frame) == len(peer), (name, len(frame), len(peer))
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), peer.reset_index(drop=True), check_dtype=False,
                                      check_exact=False, rtol=1e-9)
        ours, theirs = median_seconds(fast, body), median_seconds(naive, body)
        print(f"{name:<10} {len(body):>10,} {ours * 1e3:>10.1f}ms {theirs * 1e3:>8.1f}ms {theirs / ours:>6.1f}x  "
              f"{len(frame):,} (+{rejected} rejected)")


if __name__ == "__main__":
    main()
