"""Toasts for new triggers, drawn as one HTML pane in the corner of the page.

Panel's notification area is a ReactiveHTML model whose every toast changes a property that holds models, and Bokeh
then walks the session's whole document again: at 30x with ten tabs open that was a sixth of a core of the server,
beside the monitor loop. Here a toast changes one string. Each toast fades out by itself (a CSS animation delayed
by the time it has left), so nothing has to be sent to take it away. The font is the dashboard's sans-serif CJK one.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

import panel as pn
from panel.viewable import Viewer

from workbench.dashboard.format import FLAT_COLOR
from workbench.dashboard.theme import FONT_STACK

CSS = """
:host {
  position: fixed; top: 12px; right: 12px; z-index: 1000; width: min(340px, calc(100vw - 24px)); pointer-events: none;
}
.wb-toast {
  font-family: FONT_STACK;
  font-size: 14px; line-height: 1.4; color: #fff; background: #616161; border-radius: 6px; padding: 8px 12px;
  margin-bottom: 8px; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.25); animation: wb-toast-out 0.4s ease-in forwards;
}
@keyframes wb-toast-out { to { opacity: 0; visibility: hidden; } }
""".replace("FONT_STACK", FONT_STACK)


class ToastStack(Viewer):
    """At most ``limit`` toasts on screen, each for ``seconds``; ``show(text)`` adds one (the oldest goes first)."""

    def __init__(self, seconds: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.limit, self.clock = seconds, limit, clock
        self._shown: list[tuple[str, float, str]] = []  # (text, shown at, colour) of the toasts still on screen
        self.pane = pn.pane.HTML("", stylesheets=[CSS], css_classes=["wb-toasts"], margin=0)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane

    def show(self, text: str, color: str = FLAT_COLOR) -> None:
        """Add a toast on a ``color`` background (red for a rise, green for a fall, grey otherwise)."""
        now = self.clock()
        self._shown = [*self.on_screen(now), (text, now, color)][-self.limit:]
        self.pane.object = "".join(
            f'<div class="wb-toast" style="background: {c}; animation-delay: {self.seconds - (now - at):.2f}s">'
            f"{html.escape(t)}</div>" for t, at, c in self._shown)

    def on_screen(self, now: float | None = None) -> list[tuple[str, float, str]]:
        now = self.clock() if now is None else now
        return [shown for shown in self._shown if now - shown[1] < self.seconds]
