"""Sources of historical bars for backfill: the shipped real samples, the simulator, and HTTP kline APIs.

Every source answers ``bars(codes, start, end, freq)`` with rows in the store's bar shape
(:data:`workbench.monitor.BAR_COLUMNS`), stamped at the bar's END in Asia/Shanghai (a daily bar at 15:00,
a 5-minute bar at 09:35 ... 15:00). A day a stock did not trade has no row: gaps stay gaps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

from workbench.calendar import TZ, TradingCalendar
from workbench.errors import ValidationError
from workbench.feeds.simulated import HISTORY_START, SimulatedMarket, simulate_daily, with_members
from workbench.market import normalize_code
from workbench.monitor import BAR_COLUMNS, BarBuilder

FREQS = ("1m", "5m", "15m", "30m", "60m", "1d")
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


class BarSource(Protocol):
    """Where backfill reads history from."""

    name: str

    def freqs(self) -> tuple[str, ...]:
        """Bar sizes this source can answer."""
        ...

    def bars(self, codes: Sequence[str], start: dt.date, end: dt.date, freq: str) -> pd.DataFrame:
        """Bars of ``codes`` ending on ``start`` .. ``end`` (inclusive), in the store's bar shape."""
        ...


def check_request(source: BarSource, start: dt.date, end: dt.date, freq: str) -> None:
    """Refuse a request a source cannot answer, naming the field."""
    if freq not in FREQS:
        raise ValidationError("freq", f"{freq!r} is not a bar size (expected one of {', '.join(FREQS)})")
    if freq not in source.freqs():
        have = ", ".join(source.freqs())
        raise ValidationError("freq", f"the {source.name} source has no {freq} bars (it has {have})")
    if start > end:
        raise ValidationError("start", f"{start} is after end {end}")


def canonical_codes(codes: Sequence[str]) -> list[str]:
    """Any vendor spelling to ``600000.SH``; a bad code is refused naming ``stock_code``."""
    return [normalize_code(c) for c in codes]


def empty_bars() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _BAR_DTYPES.items()})


_BAR_DTYPES = {"code": "object", "freq": "object", "ts": "datetime64[us, Asia/Shanghai]", "open": "float64",
               "high": "float64", "low": "float64", "close": "float64", "volume": "int64", "amount": "float64"}


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Bars in schema order and dtypes, sorted by code and time."""
    out = frame[BAR_COLUMNS].astype(_BAR_DTYPES)
    return out.sort_values(["code", "ts"], ignore_index=True)


def in_range(frame: pd.DataFrame, codes: Sequence[str], start: dt.date, end: dt.date) -> pd.DataFrame:
    """Rows of ``codes`` whose bar ends on a Shanghai date from ``start`` to ``end``."""
    local = frame["ts"].dt.tz_convert(TZ).dt.date
    keep = frame["code"].isin(list(codes)) & (local >= start) & (local <= end)
    return frame.loc[keep]


class SampleBars:
    """The real bars shipped in ``data/samples``: 8 stocks daily 2005-2020, and 000338 in 5-minute bars, June 2020.

    Volumes are in shares, amounts in yuan, prices unadjusted (as the source gives them).
    """

    name = "samples"

    def __init__(self, folder: Path = SAMPLES) -> None:
        self.folder = folder

    def freqs(self) -> tuple[str, ...]:
        return ("1d", "5m")

    def bars(self, codes: Sequence[str], start: dt.date, end: dt.date, freq: str) -> pd.DataFrame:
        check_request(self, start, end, freq)
        codes = canonical_codes(codes)
        frame = self._daily() if freq == "1d" else self._five_minute()
        return conform(in_range(frame, codes, start, end))

    def codes(self, freq: str = "1d") -> list[str]:
        frame = self._daily() if freq == "1d" else self._five_minute()
        return sorted(frame["code"].unique())

    def _daily(self) -> pd.DataFrame:
        raw = pd.read_csv(self.folder / "daily_8stocks_2005_2020.csv.gz", dtype={"code": str})
        day = pd.to_datetime(raw["date"]).dt.normalize() + pd.Timedelta(hours=15)
        return self._frame(raw, day, "1d")

    def _five_minute(self) -> pd.DataFrame:
        raw = pd.read_csv(self.folder / "sz000338_5m_202006.csv", dtype={"code": str})
        return self._frame(raw, pd.to_datetime(raw["ts"]), "5m")

    @staticmethod
    def _frame(raw: pd.DataFrame, naive_end: pd.Series, freq: str) -> pd.DataFrame:
        out = raw[["open", "high", "low", "close"]].astype("float64")
        out["code"] = [normalize_code(c.zfill(6)) for c in raw["code"]]
        out["freq"] = freq
        out["ts"] = naive_end.dt.tz_localize(TZ.key).astype("datetime64[us, Asia/Shanghai]")
        out["volume"] = raw["volume"].round().astype("int64")
        out["amount"] = raw["amount"].astype("float64")
        return out


class SimulatedBars:
    """History of the simulated market for any universe: daily bars from the daily chain, 1-minute bars by
    replaying simulated days through the monitor's own bar builder."""

    name = "simulated"

    def __init__(self, universe: pd.DataFrame, seed: int, calendar: TradingCalendar | None = None) -> None:
        self.universe = universe
        self.seed = seed
        self.calendar = calendar or TradingCalendar()

    def freqs(self) -> tuple[str, ...]:
        return ("1d", "1m")

    def bars(self, codes: Sequence[str], start: dt.date, end: dt.date, freq: str) -> pd.DataFrame:
        check_request(self, start, end, freq)
        codes = canonical_codes(codes)
        if start < HISTORY_START:
            raise ValidationError("start", f"the simulated market begins on {HISTORY_START}; got {start}")
        universe = self.universe[self.universe["code"].isin(list(codes))].reset_index(drop=True)
        unknown = sorted(set(codes) - set(universe["code"]))
        if unknown:
            raise ValidationError("codes", f"not in the universe: {unknown[:5]}")
        universe = with_members(self.universe, universe)  # an index is made of its members: simulate them too
        if freq == "1d":
            sessions = self.calendar.sessions_in_range(HISTORY_START, end)
            bars = simulate_daily(universe, sessions, self.seed, self.calendar).frame(start, end)
        else:
            days = self.calendar.sessions_in_range(start, end)
            frames = [self._minute_bars(universe, day) for day in days]
            bars = pd.concat(frames, ignore_index=True) if frames else empty_bars()
        return conform(bars[bars["code"].isin(codes)])

    def _minute_bars(self, universe: pd.DataFrame, day: dt.date) -> pd.DataFrame:
        market = SimulatedMarket(universe, day, seed=self.seed, calendar=self.calendar)
        builder = BarBuilder(universe["code"].to_numpy(dtype=object), self.calendar)
        closed: list[pd.DataFrame] = []
        for ts in market.snapshot_times():
            closed += builder.fold(ts, market.snapshot_at(ts))[1]
        closed += builder.close_due(market.snapshot_times()[-1])
        return pd.concat(closed, ignore_index=True)
