"""docs/rules.md lists every name the rule parsers know, taken from the parsers' own tables (a term added to the
code without a line in the docs fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.rules.model import FIELD_NAMES, FUNCTIONS, INDICATORS, METRICS, STATE_NAMES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "rules.md"


def _section(text: str, title: str) -> str:
    """The text of a '## title' section, up to the next '## '."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _first_cells(section: str) -> str:
    """The first cell of every table row: where a term is named (its meaning and unit follow in the row)."""
    return "\n".join(line.split("|")[1] for line in section.splitlines() if line.startswith("| `"))


TERMS = sorted({*FIELD_NAMES, *INDICATORS, *METRICS, *STATE_NAMES})
OUTPUTS = sorted({(name, out) for name, (_, _, outs) in INDICATORS.items() for out in outs})


@pytest.mark.parametrize("name", TERMS)
def test_every_compact_term_has_a_row_with_its_meaning_and_unit(name):
    cells = _first_cells(_section(DOCS.read_text(encoding="utf-8"), "Every term"))
    assert re.search(rf"`{name}[`(]", cells), f"docs/rules.md, 'Every term': no row for {name}"


@pytest.mark.parametrize(("name", "output"), OUTPUTS)
def test_every_indicator_output_is_named_in_its_row(name, output):
    cells = _first_cells(_section(DOCS.read_text(encoding="utf-8"), "Every term"))
    row = next(line for line in cells.splitlines() if f"`{name}(" in line)
    assert f"`.{output}`" in row


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_formula_function_is_in_the_formula_table(name):
    assert f"`{name}(" in _section(DOCS.read_text(encoding="utf-8"), "通达信 formulas")


def test_every_term_the_docs_name_is_one_the_parser_knows():
    """The reverse: a row for a name the parser refuses (a renamed or removed term) is stale."""
    from workbench.rules.parse import parse_rule

    cells = _first_cells(_section(DOCS.read_text(encoding="utf-8"), "Every term"))
    named = {m.group(1) for m in re.finditer(r"`([a-z_0-9]+)(?:\([^`]*\))?`", cells)}
    outputs = {out for _, out in OUTPUTS}
    unknown = sorted(n for n in named - set(TERMS) - outputs if n not in ("ma", "take_profit", "stop_loss"))
    assert not unknown, f"docs/rules.md names terms the parser does not know: {unknown}"
    parse_rule("take_profit(5%) or stop_loss(3%) or ma(5) > 1")  # the three extra names do parse
