"""A rule backtest over a year of daily bars for the whole market, against the same rule written in pandas.

    .venv/bin/python bench/bench_backtest.py [--days 250] [--stocks 5447]

The rule has four conditions: ``close crosses_above sma(20) and rsi(14) < 70 and volume_ratio(5) > 1.5 and
change_pct > 2``, on the simulated market's daily bars (5,447 stocks). Our side is ``workbench.rules.backtest``:
the live evaluation code stepped bar by bar (incremental indicators, the alert state machine). The peer is what a
researcher writes in pandas: group by stock, rolling mean, Chinese-terminal RSI by ``ewm``, the volume ratio from
the previous five days, a shift for the cross. Both must find the same fires; the script checks that first.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.calendar import TradingCalendar  # noqa: E402
from workbench.feeds.simulated import HISTORY_START, simulate_daily  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.rules import backtest, summarize  # noqa: E402
from workbench.rules.compile import EPS  # noqa: E402

UNIVERSE_CSV = Path(__file__).resolve().parents[1] / "data" / "samples" / "universe_2026-10-22.csv"
RULE = "close crosses_above sma(20) and rsi(14) < 70 and volume_ratio(5) > 1.5 and change_pct > 2"


def pandas_peer(bars: pd.DataFrame) -> pd.DataFrame:
    """The same rule, the usual pandas way (one groupby per indicator)."""
    frame = bars.sort_values(["code", "ts"]).reset_index(drop=True)
    by = frame.groupby("code", sort=False)
    close = frame["close"]
    prev = by["close"].shift(1)
    sma20 = by["close"].transform(lambda s: s.rolling(20).mean())
    move = close - prev
    up = move.clip(lower=0).groupby(frame["code"]).transform(lambda s: s.ewm(alpha=1 / 14, adjust=False).mean())
    total = move.abs().groupby(frame["code"]).transform(lambda s: s.ewm(alpha=1 / 14, adjust=False).mean())
    rsi = up / total * 100
    vma5 = by["volume"].transform(lambda s: s.rolling(5).mean().shift(1))
    # comparisons with the rule language's tolerance: prices sit on a 0.01 grid, equal within 1e-9 is equal
    side = pd.Series(np.where(close >= sma20 - EPS, 1.0, -1.0), index=frame.index).where(sma20.notna())
    was = side.groupby(frame["code"]).shift(1)
    cross = (was == -1) & (side == 1)
    fire = (cross & (rsi < 70 - EPS) & (frame["volume"] / vma5 > 1.5 + EPS)
            & ((close / prev - 1) * 100 > 2 + EPS))
    return frame.loc[fire, ["code", "ts"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=250)
    parser.add_argument("--stocks", type=int, default=None)
    args = parser.parse_args()
    universe = load_universe(UNIVERSE_CSV)
    if args.stocks:
        universe = universe.iloc[: args.stocks].reset_index(drop=True)
    calendar = TradingCalendar()
    sessions = calendar.sessions_in_range(HISTORY_START, dt_end := calendar.previous_session(
        pd.Timestamp("2026-11-25").date()))
    bars = simulate_daily(universe, sessions, seed=20261125).frame(start=sessions[-args.days])
    del dt_end
    print(f"{len(bars):,} daily bars: {bars['code'].nunique():,} stocks x {bars['ts'].nunique()} days")

    t0 = time.perf_counter()
    fires = backtest(RULE, bars, calendar=calendar)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    peer = pandas_peer(bars)
    theirs = time.perf_counter() - t0

    a = set(zip(fires["code"], fires["ts"], strict=True))
    b = set(zip(peer["code"], peer["ts"], strict=True))
    if a != b:
        print(f"MISMATCH: backtest {len(a)} fires, pandas {len(b)}; only ours {sorted(a - b)[:3]}, "
              f"only pandas {sorted(b - a)[:3]}")
        sys.exit(1)
    print(f"rule: {RULE}")
    print(f"summary: {summarize(fires, bars)}")
    print(f"workbench.rules.backtest (live code, bar by bar)  {ours:8.3f} s  "
          f"({len(bars) / ours / 1e6:.2f} M bars/s)")
    print(f"pandas groupby/rolling/ewm, same rule             {theirs:8.3f} s")
    print(f"ratio pandas / backtest                           {theirs / ours:8.2f} x  (both found {len(a)} fires)")


if __name__ == "__main__":
    main()
