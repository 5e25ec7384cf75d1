"""One sans-serif CJK font for the whole page, served by the dashboard's own server (no CDN, no system font left to
chance): Debian's WenQuanYi Micro Hei at ``/wb-fonts/`` and an ``@font-face``, with the usual Chinese fallbacks.

Debian ships it as a TrueType *collection* (.ttc, the font and its Mono sibling) that Chromium's font sanitizer
refuses ("OTS parsing error: FFTM: misaligned table"), so the server serves the collection's first font as a plain
.ttf, taken out of the collection in memory when the server starts. Without the file (another machine) the page
renders with the fallback list and the server logs one warning.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from tornado.web import RequestHandler

log = logging.getLogger("workbench.dashboard")

FONT_NAME: Final = "WenQuanYi Micro Hei"
FONT_STACK: Final = f'"{FONT_NAME}", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif'
FONT_URL: Final = "/wb-fonts/wqy-microhei.ttf"  # where the dashboard's server serves it
FONT_FILES: Final[tuple[Path, ...]] = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
                                       Path("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc"))


def ttf_from_collection(data: bytes, index: int = 0, drop: Sequence[bytes] = (b"FFTM",)) -> bytes:
    """Font ``index`` of a TrueType collection as a plain TrueType file: its tables copied, each 4-byte aligned
    (the misalignment Chromium refuses), without ``drop`` (FontForge's timestamp). A plain font is returned as is."""
    if data[:4] != b"ttcf":
        return data
    (start,) = struct.unpack_from(">I", data, 12 + 4 * index)
    version, count = struct.unpack_from(">4sH", data, start)
    records = sorted(r for r in (struct.unpack_from(">4sIII", data, start + 12 + 16 * i) for i in range(count))
                     if r[0] not in drop)
    power = 1 << (len(records).bit_length() - 1)  # the binary-search fields of the table directory
    header = struct.pack(">4sHHHH", version, len(records), power * 16, power.bit_length() - 1,
                         (len(records) - power) * 16)
    offset, directory, tables = 12 + 16 * len(records), [], []
    for tag, checksum, at, length in records:
        table = data[at:at + length]
        table += b"\0" * (-len(table) % 4)
        directory.append(struct.pack(">4sIII", tag, checksum, offset, length))
        tables.append(table)
        offset += len(table)
    return header + b"".join(directory) + b"".join(tables)


def load_font(candidates: Sequence[Path] = FONT_FILES) -> bytes | None:
    """The first font file that exists, as a plain TrueType font; None (and one warning) when there is none."""
    for path in candidates:
        if path.is_file():
            return ttf_from_collection(path.read_bytes())
    log.warning("dashboard font %s not found (%s): the page uses its fallback fonts", FONT_NAME,
                ", ".join(map(str, candidates)))
    return None


class FontHandler(RequestHandler):
    """Serves the font from memory, cached by the browser for a day (every page of a session asks for it)."""

    def initialize(self, font: bytes) -> None:
        self.font = font

    def get(self) -> None:
        self.set_header("Content-Type", "font/ttf")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.write(self.font)


def font_routes(font: bytes | None) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """``pn.serve``'s ``extra_patterns`` for the font (none without one)."""
    return [] if font is None else [(FONT_URL, FontHandler, {"font": font})]


def page_css(font: bool) -> str:
    """The page's global CSS: the ``@font-face`` of the served font (when ``font``) and the font stack for the
    document and every Bokeh / Panel component (their shadow roots read ``--bokeh-base-font``)."""
    face = "" if not font else (
        f'@font-face {{ font-family: "{FONT_NAME}"; src: url("{FONT_URL}") format("truetype"); '
        "font-display: swap; }\n")
    return face + f"""
:root {{ --bokeh-base-font: {FONT_STACK}; }}
html, body {{ font-family: {FONT_STACK}; margin: 0; }}
"""


# Inside a component's shadow root: tables, preformatted notes, and Bokeh's own widgets take the same font; the
# row-button columns (no field, no title) show no sort arrow.
COMPONENT_CSS: Final = f"""
:host, .tabulator, .tabulator-cell, .tabulator-col-title, pre {{ font-family: {FONT_STACK}; }}
pre {{ white-space: pre-wrap; margin: 0; }}
.tabulator .tabulator-header .tabulator-col:not([tabulator-field]) .tabulator-col-content .tabulator-col-sorter {{
  display: none;
}}
"""
