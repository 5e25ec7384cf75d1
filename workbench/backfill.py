"""Backfill of historical bars into the store: chunked by symbols, idempotent, resumable.

A job is (source, codes, start, end, freq). Its codes are split into chunks; each chunk's bars are written
together with the chunk's row in ``backfill_chunks`` in one transaction, so an interrupted job resumes at the
first chunk that did not commit, and re-running a finished job fetches nothing and writes nothing. Bars are
insert-if-absent on (code, freq, ts), so overlapping jobs never duplicate a bar.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from workbench.calendar import Clock, RealClock
from workbench.errors import ValidationError
from workbench.events import Event, JobCompleted, JobProgress
from workbench.history import BarSource, check_request
from workbench.jobs import ChunkResult, JobStore, as_jobs
from workbench.market import normalize_code
from workbench.progress import ProgressThrottle
from workbench.store.db import Store

__all__ = ["BackfillJob", "BackfillReporter", "BackfillSummary", "ChunkResult", "backfill_bars", "run_chunk"]


@dataclass(frozen=True)
class BackfillJob:
    """What to backfill. Codes are canonical and sorted, so the same request always makes the same chunks."""

    source: str
    codes: tuple[str, ...]
    start: dt.date
    end: dt.date
    freq: str
    chunk_size: int = 500

    @classmethod
    def plan(cls, source: BarSource, codes: Sequence[str], start: dt.date, end: dt.date, freq: str,
             chunk_size: int = 500) -> BackfillJob:
        check_request(source, start, end, freq)
        if chunk_size < 1:
            raise ValidationError("chunk_size", f"must be >= 1, got {chunk_size}")
        codes = list(codes)
        if not codes:
            raise ValidationError("codes", "no stock codes to backfill")
        canonical = tuple(sorted({normalize_code(c) for c in codes}))
        return cls(source.name, canonical, start, end, freq, chunk_size)

    @property
    def key(self) -> str:
        digest = hashlib.sha256(",".join(self.codes).encode()).hexdigest()[:12]
        return f"{self.source}|{self.freq}|{self.start}|{self.end}|{self.chunk_size}|{digest}"

    def chunks(self) -> list[tuple[str, ...]]:
        return [self.codes[i:i + self.chunk_size] for i in range(0, len(self.codes), self.chunk_size)]


@dataclass
class BackfillSummary:
    job_key: str
    run_id: str
    codes: int
    chunks: int
    skipped: int = 0
    fetched: int = 0
    written: int = 0
    seconds: float = 0.0
    results: list[ChunkResult] = field(default_factory=list, repr=False)

    def add(self, result: ChunkResult) -> None:
        self.results.append(result)
        self.skipped += result.skipped
        self.fetched += result.fetched
        self.written += result.written

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "results"}


def run_chunk(store: Store | JobStore, source: BarSource, job: BackfillJob, index: int, clock: Clock) -> ChunkResult:
    """Fetch and write one chunk, unless it already committed. Safe to run twice, from any process, beside a server
    or not (:mod:`workbench.jobs`)."""
    jobs = as_jobs(store)
    codes = job.chunks()[index]
    if index in jobs.completed_chunks(job.key):
        return ChunkResult(index, len(codes), skipped=True)
    bars = source.bars(codes, job.start, job.end, job.freq)
    return jobs.write_chunk(job.key, index, len(codes), bars, clock.now())


ProgressHook = Callable[[BackfillSummary, int], None]


class BackfillReporter:
    """One run of a job: its summary, throttled ``backfill.progress`` events, a hook for bars and artifacts, and
    the ``backfill.completed`` event with the run's duration. Whoever runs the chunks (a loop, a flow) uses it."""

    def __init__(self, store: Store | JobStore, job: BackfillJob, clock: Clock, hook: ProgressHook | None = None
                 ) -> None:
        self.jobs, self.job, self.clock, self.hook = as_jobs(store), job, clock, hook
        self.summary = BackfillSummary(job.key, uuid.uuid4().hex[:12], len(job.codes), len(job.chunks()))
        self.throttle = ProgressThrottle(total=len(job.codes))
        self.done_codes = 0
        self._started = time.perf_counter()

    def chunk_done(self, result: ChunkResult) -> None:
        self.summary.add(result)
        self.done_codes += result.codes
        if self.hook is not None:
            self.hook(self.summary, self.done_codes)
        if self.throttle.due(self.done_codes):
            self._publish(JobProgress(timestamp=self.clock.now(), job="backfill", run_id=self.summary.run_id,
                                      done=self.done_codes, total=len(self.job.codes), detail={"key": self.job.key}))

    def finished(self) -> BackfillSummary:
        self.summary.seconds = round(time.perf_counter() - self._started, 3)
        self._publish(JobCompleted(timestamp=self.clock.now(), job="backfill", run_id=self.summary.run_id,
                                   summary={"key": self.job.key, **self.summary.as_dict()}))
        return self.summary

    def _publish(self, event: Event) -> None:
        self.jobs.publish([event])


def backfill_bars(store: Store | JobStore, source: BarSource, codes: Sequence[str], start: dt.date, end: dt.date,
                  freq: str = "1d", chunk_size: int = 500, progress: ProgressHook | None = None,
                  clock: Clock | None = None) -> BackfillSummary:
    """Backfill ``codes`` from ``source`` chunk by chunk in this process (the Prefect flow runs chunks as tasks)."""
    clock = clock or RealClock()
    job = BackfillJob.plan(source, codes, start, end, freq, chunk_size)
    reporter = BackfillReporter(store, job, clock, progress)
    for index in range(len(job.chunks())):
        reporter.chunk_done(run_chunk(store, source, job, index, clock))
    return reporter.finished()
