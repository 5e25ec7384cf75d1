"""The instrument universe: which stocks exist, on which exchange and board, and since when (their daily price
limits follow from that and the date: :mod:`workbench.limits`), plus the indexes (:mod:`workbench.indexes`).

The universe CSV lists stocks only (:func:`load_universe`). The indexes join it in one place,
:func:`with_indexes`, called by :func:`workbench.app.universe_for` (what the monitor, the feeds, the store's
``instruments`` table, charts and tasks see) and by the simulated bar source. Index rows have board ``index``;
whatever means "stocks" (market scans, board watchlists, breadth) takes :func:`stocks_of` of a universe.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.errors import ValidationError
from workbench.indexes import INDEX_BOARD, INDEXES
from workbench.market import boards_of, normalize_code

UNIVERSE_COLUMNS = ["code", "name", "exchange", "board", "listing_date"]


def universe_from_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Canonical universe rows (code ``600000.SH``) from a ``code,name[,exchange,listing_date]`` table."""
    missing = {"code", "name"} - set(raw.columns)
    if missing:
        raise ValidationError("universe", f"missing columns {sorted(missing)}")
    codes = [normalize_code(str(c).zfill(6)) for c in raw["code"]]
    out = pd.DataFrame({"code": codes, "name": raw["name"].astype(str).str.strip()})
    if out["code"].duplicated().any():
        dupes = out.loc[out["code"].duplicated(), "code"].head(3).tolist()
        raise ValidationError("universe", f"duplicate codes {dupes}")
    out["exchange"] = out["code"].str[-2:]
    out["board"] = boards_of(codes).astype(object)
    listing = raw["listing_date"] if "listing_date" in raw.columns else pd.Series([None] * len(raw))
    out["listing_date"] = pd.to_datetime(listing.to_numpy(), errors="coerce").date
    return out.sort_values("code", ignore_index=True)[UNIVERSE_COLUMNS]


def load_universe(path: Path | str) -> pd.DataFrame:
    """Read a universe CSV (codes kept as text so leading zeros survive)."""
    path = Path(path)
    if not path.exists():
        raise ValidationError("universe_path", f"{path} does not exist")
    raw = pd.read_csv(path, dtype={"code": str}, encoding="utf-8")
    return universe_from_frame(raw)


def index_rows() -> pd.DataFrame:
    """Universe rows of the known indexes (board ``index``, no listing date)."""
    return pd.DataFrame({"code": [i.code for i in INDEXES], "name": [i.name for i in INDEXES],
                         "exchange": [i.exchange for i in INDEXES], "board": INDEX_BOARD,
                         "listing_date": [None] * len(INDEXES)})[UNIVERSE_COLUMNS]


def with_indexes(universe: pd.DataFrame) -> pd.DataFrame:
    """The universe with the index rows after its stocks (once: a universe that has them already is unchanged).

    After, not sorted in: positions of the stocks stay what they were, so code that picks "the first stocks" of a
    universe still picks stocks."""
    rows = index_rows()
    rows = rows[~rows["code"].isin(universe["code"])]
    if rows.empty:
        return universe
    extra = rows.reindex(columns=universe.columns) if set(UNIVERSE_COLUMNS) <= set(universe.columns) else rows
    return pd.concat([universe, extra.astype(object)], ignore_index=True)


def stocks_of(universe: pd.DataFrame) -> pd.DataFrame:
    """The universe without its indexes: what a market scan, a board watchlist or a breadth count runs over. Reads
    the ``board`` column where there is one, else the codes (:func:`workbench.indexes.is_index`)."""
    from workbench.indexes import is_index

    index = (universe["board"] == INDEX_BOARD).to_numpy() if "board" in universe.columns \
        else is_index(universe["code"].to_numpy())
    return universe.loc[~index].reset_index(drop=True)
