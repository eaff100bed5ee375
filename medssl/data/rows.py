"""Row references in error messages about user CSVs (label tables, sidecars)."""

from __future__ import annotations

from collections.abc import Sequence

#: Rows named in one message; the rest are counted.
MAX_LISTED = 3


def listed_rows(rows: Sequence[int]) -> str:
    """``"2, 5, 9 (+4 more)"``: the first :data:`MAX_LISTED` row numbers and a count."""
    listed = ", ".join(str(r) for r in rows[:MAX_LISTED])
    more = f" (+{len(rows) - MAX_LISTED} more)" if len(rows) > MAX_LISTED else ""
    return listed + more
