"""What every part of the control plane shares: who acts, on which store and clock, and the audit of a command.

:class:`workbench.control.Service` is composed of one class per job (task commands, the calendar's holidays,
service runs, health); each derives from :class:`ControlCore`, so the attributes and the audited command they all
use are declared once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from workbench.calendar import Clock, TradingCalendar
from workbench.config import Settings
from workbench.errors import ValidationError, WorkbenchError
from workbench.store import tasks as task_store
from workbench.store.db import Store

if TYPE_CHECKING:
    from workbench.control.runs import Launcher

ACTORS = ("dashboard", "cli", "notebook", "schedule", "api")


def check_actor(actor: str) -> str:
    """``actor`` when the audit log knows it; a ValidationError naming the choices otherwise."""
    if actor not in ACTORS:
        raise ValidationError("actor", f"must be one of {', '.join(ACTORS)}, got {actor!r}")
    return actor


class ControlCore:
    """The state the parts of the control plane share (set by :class:`workbench.control.Service`)."""

    settings: Settings
    actor: str
    clock: Clock
    store: Store
    launchers: dict[str, Launcher]
    _calendar: tuple[tuple[dt.date, ...], TradingCalendar] | None

    @contextlib.contextmanager
    def _command(self, action: str, task_id: int | None = None,
                 detail: dict[str, Any] | None = None) -> Iterator[None]:
        """Audit a command that fails: its own transaction rolled back, the attempt is still on the record.

        Input the database cannot hold at all (text from bytes that were not UTF-8, in a filter say) is refused here
        by its key. The record keeps escaped copies of the input and of the error (``\\x1b``, ``\\udcff``): hostile
        input is on the record and never replayed raw to whoever reads it."""
        from workbench.safetext import shown, unstorable

        try:
            found = unstorable(detail, "detail")
            if found is not None:
                raise ValidationError(*found)
            yield
        except WorkbenchError as exc:
            with contextlib.suppress(WorkbenchError), self.store.write() as con:
                task_store.audit(con, self.clock.now(), self.actor, action, task_id,
                                 None if detail is None else jsonable(detail), "error",
                                 shown(str(exc), keep_newlines=True))
            raise


def jsonable(value: Any) -> Any:
    """A value as the audit log stores it: JSON types only, NaN and infinities as text ("nan", "inf"), and text with
    control characters, bidi controls or undecodable bytes escaped (``\\x1b``), so the record of a refused input
    can always be written and never replays it raw."""
    from workbench.safetext import shown

    if isinstance(value, str):
        return shown(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, int) or value is None:  # bool is an int
        return value
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {shown(str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return shown(str(value))
