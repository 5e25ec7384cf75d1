"""The dispatcher on one background thread beside the monitor loop, so delivery never slows a tick."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from workbench.errors import WorkbenchError
from workbench.notify.dispatcher import Dispatcher, DispatchStats

log = logging.getLogger("workbench.notify")


class BackgroundDelivery:
    """``with BackgroundDelivery(dispatcher): run the loop`` delivers every ``poll`` seconds (wall time) and drains
    what is due once more when the block ends. A round that fails (a busy database) is logged and retried."""

    def __init__(self, dispatcher: Dispatcher, poll: float = 0.2) -> None:
        self.dispatcher = dispatcher
        self.poll = poll
        self.stats = DispatchStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-notify", daemon=True)

    def __enter__(self) -> BackgroundDelivery:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self._round(drain=True)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self._round(drain=False)

    def _round(self, drain: bool) -> None:
        try:
            self.stats.add(self.dispatcher.drain() if drain else self.dispatcher.run_once())
        except WorkbenchError as exc:  # a busy store or a channel setup problem: the next round tries again
            log.warning("notification round failed: %s", exc)
