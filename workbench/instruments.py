"""The instrument universe: which stocks exist, on which exchange and board, and since when (their daily price
limits follow from that and the date: :mod:`workbench.limits`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workbench.errors import ValidationError
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
