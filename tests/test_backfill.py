"""Backfill into a real DuckDB file: idempotent, resumable, gaps kept, bad requests refused, progress throttled."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.test_simulated import UNIVERSE_CSV
from workbench.backfill import BackfillJob, backfill_bars
from workbench.errors import ValidationError
from workbench.feeds.simulated import SimulatedMarket
from workbench.history import SampleBars, SimulatedBars
from workbench.instruments import load_universe
from workbench.limits import PriceLimits
from workbench.progress import ProgressThrottle
from workbench.store.db import Store
from workbench.store.history import bar_count, read_bars

RAW_DAILY = SampleBars().folder / "daily_8stocks_2005_2020.csv.gz"


def bars_in(store: Store, freq: str | None = None) -> int:
    with store.read() as con:
        return bar_count(con, freq)


def table(store: Store, sql: str, params: list | None = None) -> pd.DataFrame:
    with store.read() as con:
        return con.execute(sql, params or []).fetchdf()


def test_sample_daily_bars_backfill_once_and_rerun_adds_nothing(store, calendar):
    source = SampleBars()
    codes = source.codes()
    first = backfill_bars(store, source, codes, dt.date(2005, 1, 1), dt.date(2020, 12, 31), "1d", chunk_size=3)
    raw = pd.read_csv(RAW_DAILY, dtype={"code": str})
    assert first.fetched == first.written == len(raw) == bars_in(store, "1d")
    assert first.chunks == 3 and first.skipped == 0
    again = backfill_bars(store, source, codes, dt.date(2005, 1, 1), dt.date(2020, 12, 31), "1d", chunk_size=3)
    assert again.skipped == 3 and again.fetched == 0 and again.written == 0
    assert bars_in(store, "1d") == len(raw)
    # The bars are the file's numbers, stamped at the session close.
    with store.read() as con:
        bars = read_bars(con, "1d", dt.date(2019, 1, 2), dt.date(2019, 1, 2), ["601318.SH"])
    row = raw[(raw["code"] == "601318") & raw["date"].str.startswith("2019-01-02")].iloc[0]
    assert bars["close"].tolist() == [row["close"]] and bars["volume"].tolist() == [int(row["volume"])]
    assert bars["ts"].dt.strftime("%Y-%m-%d %H:%M %z").tolist() == ["2019-01-02 15:00 +0800"]


def test_overlapping_jobs_never_duplicate_a_bar(store):
    source = SampleBars()
    backfill_bars(store, source, ["000001"], dt.date(2018, 1, 1), dt.date(2018, 12, 31), "1d")
    backfill_bars(store, source, ["000001", "601318"], dt.date(2018, 6, 1), dt.date(2019, 6, 30), "1d")
    dupes = table(store, "SELECT count(*) - count(DISTINCT (code, freq, ts)) AS d FROM bars")
    assert dupes["d"][0] == 0
    raw = pd.read_csv(RAW_DAILY, dtype={"code": str})
    day = pd.to_datetime(raw["date"])
    expected = ((raw["code"] == "000001") & (day >= "2018-01-01") & (day <= "2019-06-30")).sum()
    assert table(store, "SELECT count(*) AS n FROM bars WHERE code = '000001.SZ'")["n"][0] == expected


def test_suspended_days_stay_gaps(store, calendar):
    source = SampleBars()
    backfill_bars(store, source, source.codes(), dt.date(2005, 1, 1), dt.date(2020, 12, 31), "1d")
    with store.read() as con:
        bars = read_bars(con, "1d", dt.date(2010, 1, 1), dt.date(2019, 12, 31))
    sessions = calendar.sessions_in_range(dt.date(2010, 1, 1), dt.date(2019, 12, 31))
    per_code = bars.groupby("code")["ts"].nunique()
    assert (per_code <= len(sessions)).all()
    assert (per_code < len(sessions)).any(), "some sample stock was suspended some day in ten years"
    assert (bars["volume"] > 0).all() and (bars["close"] > 0).all(), "no filled zero bars"
    on_calendar = set(bars["ts"].dt.date) <= set(sessions)
    assert on_calendar


def test_five_minute_samples_are_end_stamped(store):
    source = SampleBars()
    summary = backfill_bars(store, source, ["sz000338"], dt.date(2020, 6, 1), dt.date(2020, 6, 30), "5m")
    assert summary.written == 624
    with store.read() as con:
        bars = read_bars(con, "5m", dt.date(2020, 6, 1), dt.date(2020, 6, 1))
    assert len(bars) == 48
    stamps = bars["ts"].dt.strftime("%H:%M").tolist()
    assert stamps[0] == "09:35" and "11:30" in stamps and "13:05" in stamps and stamps[-1] == "15:00"
    assert "13:00" not in stamps and "09:30" not in stamps


class Failing:
    """A source that breaks on its n-th call, like a network that drops mid-job."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0
        self.name = inner.name

    def freqs(self):
        return self.inner.freqs()

    def bars(self, codes, start, end, freq):
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("feed dropped")
        return self.inner.bars(codes, start, end, freq)


def test_an_interrupted_backfill_resumes_at_the_first_unfinished_chunk(tmp_path):
    universe = load_universe(UNIVERSE_CSV).iloc[::50].reset_index(drop=True)  # 109 stocks
    codes = universe["code"].tolist()
    start, end = dt.date(2026, 1, 5), dt.date(2026, 3, 31)
    clean = Store(tmp_path / "clean.duckdb").open()
    backfill_bars(clean, SimulatedBars(universe, seed=3), codes, start, end, "1d", chunk_size=20)

    broken = Store(tmp_path / "broken.duckdb").open()
    flaky = Failing(SimulatedBars(universe, seed=3), fail_on=3)
    with pytest.raises(ConnectionError):
        backfill_bars(broken, flaky, codes, start, end, "1d", chunk_size=20)
    assert table(broken, "SELECT count(*) AS n FROM backfill_chunks")["n"][0] == 2
    resumed = backfill_bars(broken, flaky, codes, start, end, "1d", chunk_size=20)
    assert resumed.skipped == 2 and resumed.chunks == 6
    key = "SELECT code, ts, open, high, low, close, volume FROM bars ORDER BY code, ts"
    pd.testing.assert_frame_equal(table(clean, key), table(broken, key))


def test_simulated_history_joins_the_simulated_live_day(store, calendar):
    universe = load_universe(UNIVERSE_CSV).iloc[::40].reset_index(drop=True)
    source = SimulatedBars(universe, seed=11, calendar=calendar)
    live_day = dt.date(2026, 11, 25)
    backfill_bars(store, source, universe["code"], dt.date(2026, 1, 1), dt.date(2026, 11, 24), "1d")
    with store.read() as con:
        last = con.execute("SELECT code, arg_max(close, ts) AS close FROM bars GROUP BY code").fetchdf()
    opening = SimulatedMarket(universe, live_day, seed=11, calendar=calendar).snapshot_at(
        calendar.session_bounds(live_day).open)
    joined = opening.merge(last, on="code")
    assert len(joined) >= len(universe) - 2
    assert np.array_equal(joined["prev_close"].to_numpy(), joined["close"].to_numpy())


def test_simulated_daily_bars_respect_ticks_and_limits(store, calendar):
    universe = load_universe(UNIVERSE_CSV).iloc[::25].reset_index(drop=True)
    bars = SimulatedBars(universe, seed=5, calendar=calendar).bars(
        universe["code"], dt.date(2023, 1, 3), dt.date(2026, 6, 30), "1d")
    prices = bars[["open", "high", "low", "close"]].to_numpy()
    assert np.allclose(prices * 100, np.round(prices * 100), atol=1e-6)
    body_low, body_high = bars[["open", "close"]].min(axis=1), bars[["open", "close"]].max(axis=1)
    assert ((bars["low"] <= body_low) & (bars["high"] >= body_high)).all()
    wide = bars.pivot(index="ts", columns="code", values="close").ffill()
    limits = PriceLimits.of_universe(universe, calendar)
    names = universe.set_index("code")["name"].reindex(wide.columns).to_numpy()
    ratio = np.array([limits.ratios(wide.columns.to_numpy(), names, ts.date())[0] for ts in wide.index[1:]])
    move = (wide / wide.shift(1) - 1).iloc[1:].abs().to_numpy()
    assert np.nanmax(move - ratio) < 0.006, "a close beyond the day's limit (beyond rounding)"
    sessions = calendar.sessions_in_range(dt.date(2023, 1, 3), dt.date(2026, 6, 30))
    missing = 1 - bars.groupby("code").size() / len(sessions)
    assert 0 < missing.mean() < 0.05, "a few halted days (and later listings), not many"


def test_simulated_minute_bars_come_from_the_monitor_bar_builder(calendar):
    universe = load_universe(UNIVERSE_CSV).iloc[:5]
    bars = SimulatedBars(universe, seed=1, calendar=calendar).bars(
        universe["code"], dt.date(2026, 11, 24), dt.date(2026, 11, 24), "1m")
    assert set(bars.groupby("code").size()) <= {240}
    assert bars["ts"].dt.strftime("%H:%M").min() == "09:31" and bars["ts"].dt.strftime("%H:%M").max() == "15:00"


@pytest.mark.parametrize(("change", "field"), [
    ({"freq": "2d"}, "freq"),
    ({"freq": "1m"}, "freq"),  # the samples have no 1-minute bars
    ({"start": dt.date(2021, 1, 1), "end": dt.date(2020, 1, 1)}, "start"),
    ({"codes": []}, "codes"),
    ({"codes": ["12345x"]}, "stock_code"),
    ({"chunk_size": 0}, "chunk_size"),
])
def test_bad_requests_name_the_field_and_write_nothing(store, change, field):
    request = {"codes": ["000001"], "start": dt.date(2019, 1, 1), "end": dt.date(2019, 12, 31), "freq": "1d",
               "chunk_size": 10} | change
    with pytest.raises(ValidationError) as err:
        backfill_bars(store, SampleBars(), **request)
    assert err.value.field == field
    assert bars_in(store) == 0
    assert table(store, "SELECT count(*) AS n FROM events")["n"][0] == 0


def test_simulated_history_refuses_dates_before_it_begins(store):
    universe = load_universe(UNIVERSE_CSV).iloc[:3]
    with pytest.raises(ValidationError, match="start"):
        backfill_bars(store, SimulatedBars(universe, seed=1), universe["code"], dt.date(2020, 1, 1),
                      dt.date(2023, 6, 1), "1d")


def test_progress_events_every_1_percent_or_50_stocks(store):
    universe = load_universe(UNIVERSE_CSV).iloc[::40].reset_index(drop=True)  # 137 stocks
    seen: list[int] = []
    summary = backfill_bars(store, SimulatedBars(universe, seed=2), universe["code"], dt.date(2026, 11, 2),
                            dt.date(2026, 11, 6), "1d", chunk_size=10, progress=lambda s, done: seen.append(done))
    assert seen[-1] == 137 and len(seen) == summary.chunks == 14
    events = table(store, "SELECT event_type, channel, payload->>'done' AS done, payload->>'job' AS job "
                          "FROM events ORDER BY seq")
    progress = events[events["event_type"] == "task.progress"]
    assert progress["done"].astype(int).tolist() == seen  # 1% of 137 is 2 stocks: every 10-stock chunk reports
    assert events["event_type"].tolist()[-1] == "task.completed"
    assert set(events["job"]) == {"backfill"} and set(events["channel"]) == {"events:tasks"}


def test_the_throttle_reports_at_1_percent_or_50_items():
    big = ProgressThrottle(total=5000)  # 1% = 50
    assert sum(big.due(i) for i in range(1, 5001)) == 100
    huge = ProgressThrottle(total=100_000)  # every 50 items, before 1% (1,000)
    assert sum(huge.due(i) for i in range(1, 100_001)) == 2000
    small = ProgressThrottle(total=7)
    assert [i for i in range(1, 8) if small.due(i)] == list(range(1, 8))


def test_a_job_is_the_same_for_any_spelling_of_the_codes():
    a = BackfillJob.plan(SampleBars(), ["000001", "sh601318"], dt.date(2019, 1, 1), dt.date(2019, 2, 1), "1d")
    b = BackfillJob.plan(SampleBars(), ["601318.SH", "000001.SZ"], dt.date(2019, 1, 1), dt.date(2019, 2, 1), "1d")
    assert a.key == b.key and a.codes == ("000001.SZ", "601318.SH")
