"""Wiring for one monitored trading day: settings in, calendar, clock, feed, store and loop out.

Flows, the CLI and notebooks call these functions; they hold no logic of their own.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from workbench.calendar import TZ, Clock, RealClock, SimulatedClock, TradingCalendar
from workbench.config import Settings
from workbench.errors import OperationalError, ValidationError, WorkbenchError
from workbench.events import CalendarWarning
from workbench.feeds.base import Feed
from workbench.feeds.simulated import SimulatedFeed, SimulatedMarket
from workbench.history import BarSource, SampleBars, SimulatedBars
from workbench.instruments import load_universe, with_indexes
from workbench.interrupt import as_keyboard_interrupt
from workbench.limits import PriceLimits
from workbench.runner import ProgressHook, RunInfo, SessionConfig, SessionSummary, StopSignal, run_session
from workbench.store import events as event_store
from workbench.store import holidays as holiday_store
from workbench.store import ticks as tick_store
from workbench.store.db import Store

if TYPE_CHECKING:
    from workbench.jobs import JobStore
    from workbench.notify.dispatcher import Dispatcher
    from workbench.notify.message import Channel

logger = logging.getLogger("workbench.app")


def open_store(settings: Settings) -> Store:
    """The store at the configured path, created and migrated if needed."""
    return Store(settings.db_path, lock_timeout=settings.lock_timeout).open()


def calendar_of(settings: Settings, stored: Iterable[dt.date]) -> TradingCalendar:
    """The trading calendar with every holiday the user gave: configured (``WORKBENCH_EXTRA_HOLIDAYS``) and stored
    (``workbench calendar holidays add``). For a caller that has read the stored ones on a connection of its own."""
    return TradingCalendar([*settings.extra_holidays, *stored])


def calendar_for(settings: Settings, store: Store | JobStore | None = None) -> TradingCalendar:
    """The trading calendar of a run: what every run, command and view that asks "is this a trading day?" builds.

    ``store`` defaults to the configured file, which is read but never created (a refused command leaves no file).
    A database that cannot be read (not there yet, locked by another process, older than the holiday table) gives
    the configured holidays only, logged: a run goes on as it would have before holidays could be stored."""
    return calendar_of(settings, stored_holidays(store or Store(settings.db_path, lock_timeout=settings.lock_timeout)))


def stored_holidays(store: Store | JobStore) -> list[dt.date]:
    """The holidays stored in ``store``; none, logged, when it cannot be read."""
    try:
        with store.read() as con:
            return holiday_store.holiday_dates(con)
    except OperationalError as exc:  # no database yet: nothing can have been stored
        logger.info("no stored holidays: %s", exc)
    except (WorkbenchError, duckdb.Error) as exc:
        logger.warning("stored holidays not read (%s); the calendar uses only WORKBENCH_EXTRA_HOLIDAYS: %s",
                       type(exc).__name__, exc)
    return []


def universe_for(settings: Settings) -> pd.DataFrame:
    """The instrument universe, cut to ``demo_symbols`` stocks evenly across the list (so every board is present),
    and the indexes after them (:func:`workbench.instruments.with_indexes`: board ``index``): the one place where
    indexes join what the monitor, the feeds, the store and tasks see."""
    universe = load_universe(settings.universe_path)
    n = settings.demo_symbols
    if n is not None and n < len(universe):
        step = len(universe) / n
        universe = universe.iloc[[int(i * step) for i in range(n)]].reset_index(drop=True)
    return with_indexes(universe)


def ensure_instruments(store: Store, universe: pd.DataFrame) -> None:
    with store.write() as con:
        tick_store.upsert_instruments(con, universe)


def latest_session(calendar: TradingCalendar, today: dt.date) -> dt.date:
    """Today if it is a trading day, else the trading day before it."""
    return today if calendar.is_session(today) else calendar.previous_session(today)


def make_feed(settings: Settings, universe: pd.DataFrame, trading_date: dt.date, clock: Clock,
              calendar: TradingCalendar | None = None) -> Feed:
    """The configured quote source (``settings.feed``) over ``universe``, reporting health.

    ``calendar`` is the run's (stored holidays included): a new listing's limit-free days are counted on it.

    A live source is a failover of one or more providers (tencent, sina, eastmoney, xtquant), so every live feed
    falls over and back the same way. When every provider fails, ``snapshot`` raises a TransientError: the loop
    misses that tick and the stale detector raises ``feed.stale`` when it lasts.
    """
    from workbench.feeds.base import Tracked

    if settings.feed == "simulated":
        market = SimulatedMarket(universe, trading_date, seed=settings.demo_seed, interval=settings.poll_interval)
        return Tracked(SimulatedFeed(market, clock), clock)
    if settings.feed == "replay":
        return _replay_feed(settings, universe, trading_date, clock)
    from workbench.feeds.failover import FailoverFeed

    order = settings.feed_order if settings.feed == "failover" else [settings.feed]
    calendar = calendar or TradingCalendar(settings.extra_holidays)
    providers = [_live_feed(name, settings, universe, clock, calendar) for name in dict.fromkeys(order)]
    if not providers:
        raise OperationalError("feed 'failover' needs providers: set WORKBENCH_FEED_ORDER, e.g. "
                               '\'["tencent", "sina"]\', or WORKBENCH_FEED=tencent,sina')
    return FailoverFeed(providers, clock, settings.feed_failback_seconds)


def _live_feed(name: str, settings: Settings, universe: pd.DataFrame, clock: Clock,
               calendar: TradingCalendar) -> Feed:
    from workbench.net import HttpClient

    codes = universe["code"].tolist()
    limits = PriceLimits.of_universe(universe, calendar)

    def client(headers: dict[str, str] | None = None) -> HttpClient:
        return HttpClient(timeout=settings.feed_timeout, retries=settings.feed_retries, backoff=0.25, headers=headers)

    if name == "tencent":
        from workbench.feeds.tencent import TencentFeed

        return TencentFeed(client(), clock, codes, settings.tencent_url, settings.feed_batch_size,
                           settings.feed_concurrency, limits)
    if name == "sina":
        from workbench.feeds.sina import SinaFeed

        return SinaFeed(client({"Referer": settings.sina_referer}), clock, codes, settings.sina_url,
                        settings.feed_batch_size, settings.feed_concurrency, limits)
    if name == "eastmoney":
        from workbench.feeds.eastmoney import EastmoneyFeed

        return EastmoneyFeed(client(), clock, codes, settings.eastmoney_quote_url, settings.eastmoney_page_size,
                             settings.feed_concurrency, limits)
    if name == "xtquant":
        from workbench.feeds.xtquant import XtQuantFeed

        feed = XtQuantFeed(clock, codes, dict(zip(universe["code"], universe["name"], strict=True)), limits=limits)
        feed.xt()  # fail at start, not at the first tick, when xtquant is not installed
        return feed
    raise OperationalError(f"feed {name!r} is not a live provider (expected tencent, sina, eastmoney or xtquant)")


def _replay_feed(settings: Settings, universe: pd.DataFrame, trading_date: dt.date, clock: Clock) -> Feed:
    """The replay feed over the configured tape: stored quotes or recordings, stored bars, or the 5-minute sample."""
    from workbench.feeds.replay import ReplayFeed, StoreTape, sample_tape, store_bars_tape

    day = settings.replay_date or trading_date
    if settings.replay_source == "sample":
        return ReplayFeed(sample_tape(day), clock, settings.replay_speed)
    source = Store(settings.replay_db_path or settings.db_path, lock_timeout=settings.lock_timeout)
    codes = universe["code"].tolist()
    if settings.replay_source == "bars":
        names = dict(zip(universe["code"], universe["name"], strict=True))
        return ReplayFeed(store_bars_tape(source, day, settings.replay_bar_freq, codes, names), clock,
                          settings.replay_speed)
    tape = StoreTape(source, day, settings.replay_source, settings.replay_feed, codes)
    if tape.span() is None:
        raise OperationalError(f"nothing to replay: {source.path} has no {settings.replay_source} on {day} "
                               "(record a day with WORKBENCH_RECORD_QUOTES=all, or set WORKBENCH_REPLAY_DATE)")
    return ReplayFeed(tape, clock, settings.replay_speed)


BAR_SOURCES = ("simulated", "samples", "eastmoney")


def make_bar_source(name: str, settings: Settings, calendar: TradingCalendar | None = None) -> BarSource:
    """The history source a backfill reads, by name."""
    if name == "simulated":
        return SimulatedBars(with_indexes(load_universe(settings.universe_path)), settings.demo_seed, calendar)
    if name == "samples":
        return SampleBars()
    if name == "eastmoney":
        from workbench.feeds.eastmoney import EastmoneyKlines
        from workbench.net import HttpClient

        client = HttpClient(timeout=settings.http_timeout, retries=settings.http_retries)
        return EastmoneyKlines(client, settings.eastmoney_kline_url)
    raise ValidationError("source", f"{name!r} is not a bar source (expected one of {', '.join(BAR_SOURCES)})")


def default_codes(source: BarSource, settings: Settings, freq: str) -> list[str]:
    """Every stock the source knows: the whole universe for the simulator, the sample stocks for the samples."""
    if isinstance(source, SampleBars):
        return source.codes(freq)
    return load_universe(settings.universe_path)["code"].tolist()


def prepare_demo_day(settings: Settings, calendar: TradingCalendar,
                     day: dt.date) -> tuple[Store, pd.DataFrame, int]:
    """The embedded default ready for ``day``: the store, the universe's instruments, and example tasks priced off
    the day's opening snapshot when the database has none; (store, universe, tasks added)."""
    from workbench.demo import seed_tasks

    store = open_store(settings)
    universe = universe_for(settings)
    ensure_instruments(store, universe)
    opening = SimulatedMarket(universe, day, seed=settings.demo_seed,
                              interval=settings.poll_interval).snapshot_at(calendar.session_bounds(day).open)
    return store, universe, seed_tasks(store, opening, settings.demo_tasks, settings.demo_seed)


def make_clock(calendar: TradingCalendar, trading_date: dt.date, speed: float | None) -> Clock:
    """The real clock, or a simulated one that starts a minute before the open of ``trading_date`` (the loop does
    not tick the call auction, so a compressed day need not wait through it)."""
    if speed is None:
        return RealClock()
    open_ = (calendar.session_bounds(trading_date).open if calendar.is_session(trading_date)
             else dt.datetime.combine(trading_date, dt.time(9, 30), tzinfo=TZ))
    start = open_ - dt.timedelta(minutes=1)
    return SimulatedClock(start, speed=speed)


def run_day(
    settings: Settings,
    trading_date: dt.date | None = None,
    speed: float | None = None,
    progress: ProgressHook | None = None,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    run: RunInfo | None = None,
    store: Store | None = None,
    deliver: bool = True,
    stop: StopSignal | None = None,
) -> dict[str, Any]:
    """Monitor one trading day against the configured feed and database; return the loop's summary.

    ``run`` names the service run the loop reports to (the control plane's, or a schedule's). The workbench server
    passes its held ``store`` and, since its own dispatcher delivers for its whole life, ``deliver=False``. ``stop``
    is the process's own stop request (SIGTERM in a flow run): the loop honours it at its next tick, and the outbox
    is handed over at once, as after Ctrl-C, rather than waited on past the runner's grace period."""
    store = store or open_store(settings)
    calendar = calendar_for(settings, store)
    clock_for_today = RealClock()
    day = trading_date or clock_for_today.now().date()
    warning = calendar.calendar_warning(day)
    if warning:
        if log is not None:
            log.warning(warning)
        event_store.publish(store, [CalendarWarning(timestamp=clock_for_today.now(), message=warning)])
    unknown = calendar.missing_holidays_warning(clock_for_today.now().date())
    if unknown and log is not None:
        log.warning(unknown)
    universe = universe_for(settings)
    ensure_instruments(store, universe)
    clock = make_clock(calendar, day, speed)
    run = run or RunInfo(speed=speed)
    feed = make_feed(settings, universe, day, clock, calendar) if calendar.is_session(day) else None
    if feed is None:
        return summary_dict(run_session(store, calendar, clock, None, universe, day,
                                        SessionConfig.from_settings(settings, speed), run=run, stop=stop))
    from workbench.notify.background import BackgroundDelivery

    channels = make_channels(settings)  # delivery runs beside the loop, on its own thread and the real clock
    delivery = (BackgroundDelivery(make_dispatcher(settings, store, RealClock(), channels),
                                   finish=settings.notify_finish_seconds) if channels and deliver else None)
    with delivery or contextlib.nullcontext(), contextlib.closing(feed) if hasattr(feed, "close") \
            else contextlib.nullcontext(), as_keyboard_interrupt():  # Ctrl-C hands the outbox over at once
        summary = run_session(store, calendar, clock, feed, universe, day,
                              SessionConfig.from_settings(settings, speed, channels), progress=progress, run=run,
                              stop=stop)
        if delivery is not None and stop is not None and stop.requested:
            delivery.finish = 0.0  # one last round, then the rest stays in the outbox for the next run
    out = summary_dict(summary)
    if delivery is not None:
        out["notifications_sent"] = delivery.stats.delivered
        out["notifications_pending"] = delivery.pending  # by channel: left in the outbox for the next dispatcher
    return out


def summary_dict(summary: SessionSummary) -> dict[str, Any]:
    out = dict(summary.__dict__)
    out["trading_date"] = summary.trading_date.isoformat()
    out["resumed_after"] = None if summary.resumed_after is None else summary.resumed_after.isoformat()
    return out


def history_bars(settings: Settings, source: str, codes: list[str], start: dt.date, end: dt.date,
                 freq: str) -> pd.DataFrame:
    """Bars for a study (a rule backtest): from the database (``store``) or straight from a bar source."""
    from workbench.history import canonical_codes
    from workbench.store.history import read_bars

    wanted = canonical_codes(codes)
    if source == "store":
        with open_store(settings).read() as con:
            return read_bars(con, freq, start, end, wanted)
    return make_bar_source(source, settings).bars(wanted, start, end, freq)


def make_channels(settings: Settings) -> dict[str, Channel]:
    """The notification channels the settings configure, by name (webhook, email, apprise)."""
    from workbench.notify.channels import build_channel

    out: dict[str, Channel] = {}
    if settings.notify_webhook_url:
        secret = settings.notify_webhook_secret
        out["webhook"] = build_channel("webhook", "webhook", url=settings.notify_webhook_url,
                                       secret=None if secret is None else secret.get_secret_value(),
                                       timeout=settings.http_timeout)
    if settings.notify_email_host:
        password = settings.notify_email_password
        out["email"] = build_channel(
            "email", "email", host=settings.notify_email_host, port=settings.notify_email_port,
            sender=settings.notify_email_sender, recipients=settings.notify_email_recipients,
            username=settings.notify_email_username,
            password=None if password is None else password.get_secret_value(),
            starttls=settings.notify_email_starttls, ssl=settings.notify_email_ssl)
    if settings.notify_apprise_urls:
        out["apprise"] = build_channel("apprise", "apprise",
                                       urls=[u.get_secret_value() for u in settings.notify_apprise_urls])
    return out


def make_dispatcher(settings: Settings, store: Store, clock: Clock,
                    channels: dict[str, Channel] | None = None) -> Dispatcher:
    from workbench.notify.dispatcher import Dispatcher

    return Dispatcher(store, channels if channels is not None else make_channels(settings), clock,
                      rate_per_minute=settings.notify_rate_per_minute, digest_after=settings.notify_digest_after,
                      digest_max=settings.notify_digest_max, max_attempts=settings.notify_max_attempts)


def prune_events(settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """The retention job: delete events older than ``settings.event_retention_days`` and delivered (or failed)
    notifications older than ``settings.notification_retention_days``."""
    from workbench.store import outbox as outbox_store

    cutoff = now - dt.timedelta(days=settings.event_retention_days)
    notes_cutoff = now - dt.timedelta(days=settings.notification_retention_days)
    with open_store(settings).write() as con:
        removed = event_store.prune(con, cutoff)
        notes = outbox_store.prune(con, notes_cutoff)
    return {"removed": removed, "before": cutoff.isoformat(), "notifications_removed": notes,
            "notifications_before": notes_cutoff.isoformat()}

