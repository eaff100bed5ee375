"""Row references in error messages about user CSVs (label tables, sidecars)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

#: Rows named in one message; the rest are counted.
MAX_LISTED = 3


def listed_rows(rows: Sequence[int]) -> str:
    """``"2, 5, 9 (+4 more)"``: the first :data:`MAX_LISTED` row numbers and a count."""
    listed = ", ".join(str(r) for r in rows[:MAX_LISTED])
    more = f" (+{len(rows) - MAX_LISTED} more)" if len(rows) > MAX_LISTED else ""
    return listed + more


def read_user_csv(
    path: Path, what: str, columns: Sequence[str], error: type[ValueError]
) -> pd.DataFrame:
    """Read a user CSV as strings, with a ``row`` column of CSV line numbers (header = 1).

    Args:
        path: the CSV.
        what: what the file is, for messages (``"label file"``).
        columns: columns that must be present.
        error: the exception class to raise (its message names the file, never a value).

    Raises:
        error: missing or unreadable file, or missing columns.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise error(f"{path}: {what} not found") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise error(f"{path}: not a readable CSV ({type(exc).__name__})") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise error(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    frame["row"] = range(2, len(frame) + 2)
    return frame
