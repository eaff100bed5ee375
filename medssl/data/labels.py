"""Label CSVs: join to the manifest by a keyed identifier, validate with row-level errors.

A label set is any CSV with a key column and a binary label column. The key is hashed with
the same keyed hash as ingestion (:class:`medssl.io.pseudonym.Pseudonymizer`), so raw paths
and UIDs are matched without ever being written out. Error messages name the CSV row
(line number, header = line 1), never its identifying content.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from medssl.data.keys import KEY_COLUMNS, normalise_key
from medssl.data.rows import listed_rows, read_user_csv
from medssl.data.splits import SPLITS
from medssl.io.pseudonym import Pseudonymizer


class LabelError(ValueError):
    """A label CSV that cannot be used; the message names the file and rows."""


def _fail(path: Path, problem: str, rows: Sequence[int]) -> LabelError:
    return LabelError(f"{path}: row {listed_rows(rows)}: {problem}")


def read_label_csv(path: Path, key: str, label_column: str) -> pd.DataFrame:
    """Read a label CSV and check its columns.

    Args:
        path: the CSV.
        key: one of :data:`KEY_COLUMNS` (the CSV column of the same name).
        label_column: name of the binary label column.

    Returns:
        The table as strings with a ``row`` column holding CSV line numbers.

    Raises:
        LabelError: unreadable file, unknown key kind or missing columns.
    """
    if key not in KEY_COLUMNS:
        raise LabelError(f"labels.key must be one of {sorted(KEY_COLUMNS)}, got {key!r}")
    return read_user_csv(path, "label file", (key, label_column), LabelError)


def parse_labels(
    frame: pd.DataFrame,
    path: Path,
    label_column: str,
    positive: Sequence[str],
    negative: Sequence[str],
) -> pd.Series:
    """Map label strings to 0/1.

    Raises:
        LabelError: naming rows with missing or non-binary values.
    """
    values = frame[label_column].str.strip()
    pos, neg = {str(v).strip() for v in positive}, {str(v).strip() for v in negative}
    if not pos or not neg or pos & neg:
        raise LabelError(
            f"{path}: labels.positive {sorted(pos)} and labels.negative {sorted(neg)} must be "
            "non-empty and disjoint"
        )
    bad = frame.loc[~values.isin(pos | neg), "row"].tolist()
    if bad:
        allowed = sorted(pos | neg)
        raise _fail(path, f"label '{label_column}' missing or not one of {allowed}", bad)
    return values.isin(pos).astype(int)


def join_labels(
    path: Path,
    manifest: pd.DataFrame,
    unusable: Collection[str],
    pseudo: Pseudonymizer,
    *,
    key: str = "path",
    label_column: str = "label",
    positive: Sequence[str] = ("1",),
    negative: Sequence[str] = ("0",),
) -> pd.DataFrame:
    """Validate a label CSV and attach labels to manifest images.

    Rows whose key matches an unusable source file are dropped (quarantined: the file could
    not be read; skipped as a byte-identical duplicate of a kept file); rows that match
    nothing are an error. A study- or series-level key labels every image of that study or
    series.

    Args:
        path: label CSV.
        manifest: from :func:`medssl.data.manifest.read_manifest`.
        unusable: ``source_key`` values of quarantined files and skipped duplicates.
        pseudo: the ingestion pseudonymizer.
        key: which identifier the CSV uses (:data:`KEY_COLUMNS`).
        label_column: binary label column.
        positive: values meaning abnormal (1).
        negative: values meaning normal (0).

    Returns:
        ``image_id, label, split_pin, patient_pin, row`` (pins empty when not given; ``row``
        is the CSV line that labelled the image).

    Raises:
        LabelError: naming rows with empty or unknown keys, conflicting duplicates or bad
            values.
    """
    frame = read_label_csv(path, key, label_column)
    if frame.empty:
        raise LabelError(f"{path}: no label rows")
    frame["label"] = parse_labels(frame, path, label_column, positive, negative)
    kind, column = KEY_COLUMNS[key]
    empty = frame.loc[frame[key].str.strip() == "", "row"].tolist()
    if empty:
        raise _fail(path, f"'{key}' is empty", empty)
    frame["hkey"] = [pseudo.key(kind, normalise_key(key, v)) for v in frame[key]]
    _check_pins(frame, path, pseudo)
    known = set(manifest[column])
    unknown = frame.loc[~frame["hkey"].isin(known) & ~frame["hkey"].isin(set(unusable)), "row"]
    if len(unknown):
        raise _fail(path, f"'{key}' matches no ingested image", unknown.tolist())
    frame = frame[frame["hkey"].isin(known)]
    merged = manifest[["image_id", column]].merge(frame, left_on=column, right_on="hkey")
    conflicts = merged.groupby("image_id")["label"].nunique()
    bad_ids = set(conflicts[conflicts > 1].index)
    if bad_ids:
        rows = merged.loc[merged["image_id"].isin(bad_ids), "row"].tolist()
        raise _fail(path, "duplicate key with conflicting labels", sorted(set(rows)))
    merged = merged.sort_values("row").drop_duplicates("image_id")
    out = merged[["image_id", "label", "split_pin", "patient_pin", "row"]]
    return out.sort_values("image_id").reset_index(drop=True)


def _check_pins(frame: pd.DataFrame, path: Path, pseudo: Pseudonymizer) -> None:
    """Validate optional ``split`` and ``patient_id`` columns (adds pin columns)."""
    frame["split_pin"] = frame["split"].str.strip() if "split" in frame else ""
    bad = frame.loc[~frame["split_pin"].isin(("", *SPLITS)), "row"].tolist()
    if bad:
        raise _fail(path, f"split must be one of {list(SPLITS)} or empty", bad)
    if "patient_id" in frame:
        frame["patient_pin"] = [
            pseudo.key("patient", v.strip()) if v.strip() else "" for v in frame["patient_id"]
        ]
    else:
        frame["patient_pin"] = ""
    pinned = frame[(frame["patient_pin"] != "") & (frame["split_pin"] != "")]
    spread = pinned.groupby("patient_pin")["split_pin"].nunique()
    leaking = set(spread[spread > 1].index)
    if leaking:
        rows = pinned.loc[pinned["patient_pin"].isin(leaking), "row"].tolist()
        raise _fail(path, "one patient pinned to two splits", rows)
