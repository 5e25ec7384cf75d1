"""A scan backtest: a 3-condition 通达信 formula over 250 trading days of the whole market, against MyTT per stock.

    .venv/bin/python bench/bench_scan_backtest.py [--stocks 5223] [--days 250]

Daily bars of the simulated market (the universe sample's stocks, seeded). Ours: ``workbench.rules.backtest`` with
the formula text, the code the live monitor runs (one rule row per stock, the formula's series computed once for
the whole panel, then the alert semantics stepped bar by bar), and ``scan_tables`` for the per-day counts and the
ranking. The peer: MyTT, the formulas' Python twin, run over each stock's series in a loop (the way a screening
script runs it), then the same edge semantics (a fire when the condition becomes true). Both must fire on the same
(stock, day) pairs, apart from bars where two averages are exactly equal on the 0.01 price grid (rounding decides
the side there); the script reports the agreement before the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import MyTT  # noqa: E402

from workbench.app import make_bar_source  # noqa: E402
from workbench.config import Settings  # noqa: E402
from workbench.instruments import load_universe  # noqa: E402
from workbench.rules import backtest, scan_tables  # noqa: E402

FORMULA = "CROSS(MA(C,5),MA(C,10)) AND C>O AND V>REF(V,1)"
END = dt.date(2026, 11, 20)


def mytt_fires(bars: pd.DataFrame) -> set[tuple[str, dt.date]]:
    """The formula with MyTT, one stock at a time, and an edge: the first bar of each run of true bars."""
    out: set[tuple[str, dt.date]] = set()
    for code, one in tqdm(bars.groupby("code", sort=False), desc="MyTT per stock", unit="stock", file=sys.stderr):
        c, o, v = (one[k].to_numpy(float) for k in ("close", "open", "volume"))
        held = MyTT.CROSS(MyTT.MA(c, 5), MyTT.MA(c, 10)) & (c > o) & (v > MyTT.REF(v, 1))
        rising = held & ~np.concatenate(([False], held[:-1]))
        out.update((code, d) for d in one["trading_date"].to_numpy()[rising])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stocks", type=int, default=5223)
    parser.add_argument("--days", type=int, default=250)
    args = parser.parse_args()
    settings = Settings()
    universe = load_universe(settings.universe_path)
    codes = list(universe["code"][: args.stocks])
    start = END - dt.timedelta(days=int(args.days * 365 / 243) + 10)
    t0 = time.perf_counter()
    bars = make_bar_source("simulated", settings).bars(codes, start, END, "1d")
    days = sorted(pd.to_datetime(bars["ts"]).dt.date.unique())[-args.days:]
    bars = bars[pd.to_datetime(bars["ts"]).dt.date >= days[0]].reset_index(drop=True)
    made = time.perf_counter() - t0
    print(f"{bars['code'].nunique():,} stocks x {len(days)} trading days = {len(bars):,} daily bars "
          f"(simulated, made in {made:.1f} s); formula {FORMULA}")

    t0 = time.perf_counter()
    fires = backtest(FORMULA, bars)
    per_day, ranked = scan_tables(fires, dict(zip(universe["code"], universe["name"], strict=True)))
    ours_s = time.perf_counter() - t0

    peer_bars = bars.assign(trading_date=pd.to_datetime(bars["ts"]).dt.tz_convert("Asia/Shanghai").dt.date)
    t0 = time.perf_counter()
    theirs = mytt_fires(peer_bars.sort_values(["code", "ts"]))
    peer_s = time.perf_counter() - t0

    ours = set(zip(fires["code"], fires["trading_date"], strict=True))
    both = len(ours & theirs)
    print(f"fires: ours {len(ours):,}, MyTT {len(theirs):,}, on the same (stock, day) {both:,} "
          f"({both / max(len(ours | theirs), 1):.2%} of all); {int(per_day['fires'].max()) if len(per_day) else 0} "
          f"on the busiest day; most fires on one stock {int(ranked['fires'].max()) if len(ranked) else 0}")
    print(f"scan backtest (rule book, alert semantics, per-day table, ranking)  {ours_s:8.2f} s")
    print(f"MyTT per stock, condition and edge only                              {peer_s:8.2f} s")
    print(f"ratio MyTT per stock / scan backtest                                 {peer_s / ours_s:8.1f} x")


if __name__ == "__main__":
    main()
