"""The dashboard's one CJK font (workbench.dashboard.theme): the collection Debian ships becomes a plain TrueType
font Chromium accepts, and a machine without it gets the fallback fonts and one warning."""

from __future__ import annotations

import logging
import struct

import pytest

from workbench.dashboard.theme import FONT_FILES, FONT_STACK, FONT_URL, font_routes, load_font, page_css
from workbench.dashboard.theme import ttf_from_collection as ttf


def tables(font: bytes) -> dict[bytes, tuple[int, int]]:
    (count,) = struct.unpack_from(">H", font, 4)
    return {tag: (offset, length) for tag, _checksum, offset, length in
            (struct.unpack_from(">4sIII", font, 12 + 16 * i) for i in range(count))}


def test_the_collections_first_font_becomes_a_plain_aligned_truetype_font():
    path = next((p for p in FONT_FILES if p.is_file()), None)
    if path is None:
        pytest.skip("fonts-wqy-microhei is not installed")
    font = ttf(path.read_bytes())
    assert font[:4] == b"\x00\x01\x00\x00"  # a TrueType font, not a collection ('ttcf')
    found = tables(font)
    assert {b"glyf", b"cmap", b"head", b"name"} <= set(found) and b"FFTM" not in found
    assert all(offset % 4 == 0 and offset + length <= len(font) for offset, length in found.values())
    assert list(found) == sorted(found)  # the directory is sorted by tag, as the format asks
    assert b"W\x00e\x00n\x00Q\x00u\x00a\x00n\x00Y\x00i" in font[slice(*_span(found[b"name"]))]


def _span(table: tuple[int, int]) -> tuple[int, int]:
    return table[0], table[0] + table[1]


def test_a_plain_font_is_served_as_it_is():
    assert ttf(b"\x00\x01\x00\x00rest") == b"\x00\x01\x00\x00rest"


def test_without_the_font_the_page_uses_the_fallbacks_and_the_server_warns_once(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.dashboard"):
        assert load_font([tmp_path / "missing.ttc"]) is None
    assert len([r for r in caplog.records if "fallback fonts" in r.getMessage()]) == 1
    css = page_css(False)
    assert "@font-face" not in css and FONT_STACK in css and "--bokeh-base-font" in css
    assert font_routes(None) == []


def test_with_the_font_the_page_declares_it_and_the_server_serves_it():
    css = page_css(True)
    assert "@font-face" in css and FONT_URL in css and FONT_STACK.startswith('"WenQuanYi Micro Hei"')
    for fallback in ("Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "sans-serif"):
        assert fallback in FONT_STACK
    (route, _handler, kwargs), = font_routes(b"font")
    assert route == FONT_URL and kwargs == {"font": b"font"}
