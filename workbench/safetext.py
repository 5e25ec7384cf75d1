"""Text a user typed: checked before it is stored, escaped before it is shown or written to the audit log.

Task names and codes end up in terminals, tables, logs and the database. Some characters are never what a trader
meant and do harm there: a control character (ESC starts a terminal escape sequence, BEL rings, DEL and C1 codes
such as U+009B act as escapes too; tab and newline break a one-line name), a bidirectional-text control (U+202E
shows the rest of the text reversed) and a lone surrogate (how Python keeps bytes of the command line that were not
UTF-8; the database cannot store it). Chinese and every other printable text passes unchanged.
"""

from __future__ import annotations

import re
from typing import Final

from workbench.errors import ValidationError

# C0 controls (tab and newline included), DEL and C1, the bidi controls (marks, embeddings, overrides, isolates, the
# Arabic letter mark), the line and paragraph separators, and every surrogate (only a lone one can be in a str).
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                            "\ud800-\udfff]")
_BIDI: Final = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text_problem(value: str) -> str | None:
    """What is wrong with ``value`` in words (the first unsafe character, 1-based position), or None."""
    found = _UNSAFE.search(value)
    if found is None:
        return None
    ch, position = found.group(), found.start() + 1
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte 0x80..0xFF that did not decode
        return f"is not valid UTF-8 text (undecodable byte 0x{code - 0xDC00:02X} at position {position})"
    if 0xD800 <= code <= 0xDFFF:
        return f"contains a lone surrogate (U+{code:04X}) at position {position}"
    kind = "a bidirectional-text control" if ch in _BIDI else \
        "a line separator" if ch in "\u2028\u2029" else "a control character"
    return f"contains {kind} (U+{code:04X}) at position {position}"


def check_text(field: str, value: str) -> str:
    """``value`` unchanged, or :class:`ValidationError` naming ``field`` and the character."""
    problem = text_problem(value)
    if problem is not None:
        raise ValidationError(field, problem)
    return value


def has_surrogates(value: str) -> bool:
    """Text the database cannot store at all (bytes that were not UTF-8)."""
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def shown(value: str, keep_newlines: bool = False) -> str:
    """``value`` safe to print or store: each unsafe character as its Python escape (``\\x1b``, ``\\u202e``,
    ``\\udcff``), everything else as it is. ``keep_newlines`` for multi-line messages (a rule error's caret line)."""
    if _UNSAFE.search(value) is None:
        return value

    def escape(found: re.Match[str]) -> str:
        ch = found.group()
        return ch if keep_newlines and ch == "\n" else repr(ch)[1:-1]

    return _UNSAFE.sub(escape, value)


def json_safe(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the unsafe characters JSON leaves raw (DEL, C1, bidi,
    separators, surrogates) written as ``\\uXXXX``: the same data, nothing a terminal acts on. They can only occur
    inside JSON strings, where the escape means the same character."""
    return _UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def unstorable(value: object, field: str = "value") -> tuple[str, str] | None:
    """The first text in a JSON-like value (dicts, lists, text) the database cannot store, as (its key, the problem):
    a lone surrogate, from bytes that were not UTF-8. None when all of it can be stored."""
    stack: list[tuple[str, object]] = [(field, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str) and has_surrogates(item):
            return where, text_problem(item) or "is not valid text"
        if isinstance(item, dict):
            for key, inner in reversed(item.items()):
                if isinstance(key, str) and has_surrogates(key):
                    return shown(key), text_problem(key) or "is not valid text"
                stack.append((str(key), inner))
        elif isinstance(item, list | tuple):
            stack.extend((where, inner) for inner in reversed(item))
    return None
