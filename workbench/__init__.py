"""A research workbench for watching Chinese A-share stocks during trading hours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.client import Connection

__version__ = "0.1.0"
__all__ = ["__version__", "connect"]


def connect(db_path: str | Path | None = None) -> Connection:
    """A DuckDB connection to the workbench store: through the live server when one runs, else the file read-only.

    See ``workbench.client.connect``. Imported lazily so that ``import workbench.models`` never loads DuckDB."""
    from workbench.client import connect as _connect

    return _connect(db_path)
