"""The label-independent evaluation reserve: which patients pretraining may never see.

Pretraining uses every image of every patient in the *pool*; test patients (and, under the
oracle protocol, validation patients) come only from the *reserve*. The partition is made
before, and without, any label set, so one encoder serves every label set that follows
(Oliver et al., NeurIPS 2018, "Realistic evaluation of deep semi-supervised learning
algorithms": the evaluation data must not shape the unlabelled training data).

Two ways to draw it:

* hashed (default): a patient is reserved when a keyed hash (HMAC-SHA256 with the site's
  pseudonymisation secret) of ``seed`` and its patient key falls below ``fraction``. Each
  patient's side depends on that patient alone, so adding images or patients never moves an
  existing patient.
* listed: a CSV (``reserve.path``) names reserved images or patients by path, UID or
  patient ID, e.g. a benchmark's official test split. It holds no labels.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medssl.data.keys import KEY_COLUMNS, normalise_key
from medssl.data.rows import listed_rows, read_user_csv

if TYPE_CHECKING:  # the pretrain stage imports this module and must not depend on pseudonym
    from medssl.io.pseudonym import Pseudonymizer

POOL, RESERVE = "pool", "reserve"
#: Columns of ``reserve.csv``: one row per ingested image.
RESERVE_COLUMNS = ("image_id", "patient_key", "part")
#: ``reserve.key`` values: the label keys plus ``patient_id`` (manifest ``patient_key``).
RESERVE_KEYS: dict[str, tuple[str, str]] = {
    **KEY_COLUMNS,
    "patient_id": ("patient", "patient_key"),
}


class ReserveError(ValueError):
    """A reserve fraction or reserve list that cannot be used; names the file and rows."""


def hash_unit(pseudo: Pseudonymizer, seed: int, patient_key: str) -> float:
    """A keyed, uniform number in [0, 1) for one patient (64 bits of HMAC-SHA256).

    Args:
        pseudo: the ingestion pseudonymizer (its secret keys the partition).
        seed: partition seed.
        patient_key: manifest ``patient_key``.

    Returns:
        The patient's position in [0, 1).
    """
    digest = pseudo.key("reserve", f"{seed}:{patient_key}").rsplit("-", 1)[1]
    return float(int(digest, 16) / 16 ** len(digest))


def hashed_reserve(
    patients: Collection[str], fraction: float, seed: int, pseudo: Pseudonymizer
) -> set[str]:
    """Patients whose keyed hash falls below ``fraction``.

    Args:
        patients: manifest patient keys.
        fraction: expected share of reserved patients, in [0, 1).
        seed: partition seed.
        pseudo: the ingestion pseudonymizer.

    Returns:
        The reserved patient keys.

    Raises:
        ReserveError: fraction outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ReserveError(f"params.yaml: 'reserve.fraction' must be in [0, 1), got {fraction}")
    return {p for p in set(patients) if hash_unit(pseudo, seed, p) < fraction}


def listed_reserve(
    path: Path,
    manifest: pd.DataFrame,
    unusable: Collection[str],
    pseudo: Pseudonymizer,
    key: str,
) -> set[str]:
    """Patients named, directly or through one of their images, by a reserve CSV.

    Args:
        path: CSV with a column named ``key``.
        manifest: ``image_id, patient_key`` and the key columns of :data:`RESERVE_KEYS`.
        unusable: ``source_key`` of quarantined or skipped files (their rows are dropped).
        pseudo: the ingestion pseudonymizer (keys are hashed as at ingestion).
        key: one of :data:`RESERVE_KEYS`.

    Returns:
        The reserved patient keys: every image of a listed patient is reserved.

    Raises:
        ReserveError: unreadable file, missing column, empty or unmatched keys (rows named).
    """
    if key not in RESERVE_KEYS:
        raise ReserveError(f"params.yaml: 'reserve.key' must be one of {sorted(RESERVE_KEYS)}")
    frame = read_user_csv(path, "reserve file", (key,), ReserveError)
    rows = frame["row"]
    values = frame[key].str.strip()
    empty = rows[values == ""].tolist()
    if empty:
        raise ReserveError(f"{path}: row {listed_rows(empty)}: '{key}' is empty")
    kind, column = RESERVE_KEYS[key]
    hashed = pd.Series([pseudo.key(kind, normalise_key(key, v)) for v in values])
    known = set(manifest[column])
    unknown = rows[~hashed.isin(known) & ~hashed.isin(set(unusable))].tolist()
    if unknown:
        raise ReserveError(f"{path}: row {listed_rows(unknown)}: '{key}' matches no ingested image")
    return set(manifest.loc[manifest[column].isin(set(hashed)), "patient_key"])


def partition(manifest: pd.DataFrame, reserved: Collection[str]) -> pd.DataFrame:
    """Every ingested image on its patient's side.

    Args:
        manifest: ``image_id, patient_key``.
        reserved: reserved patient keys.

    Returns:
        ``image_id, patient_key, part`` (``pool`` or ``reserve``), sorted by image id.
    """
    table = manifest[["image_id", "patient_key"]].copy()
    table["part"] = [RESERVE if p in set(reserved) else POOL for p in table["patient_key"]]
    return table.sort_values("image_id").reset_index(drop=True)


def read_reserve(path: Path) -> pd.DataFrame:
    """Read ``reserve.csv`` written by the reserve stage.

    Raises:
        ReserveError: missing file or columns.
    """
    if not path.exists():
        raise ReserveError(f"{path}: reserve table not found (run the reserve stage first)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in RESERVE_COLUMNS if c not in table.columns]
    if missing:
        raise ReserveError(f"{path}: missing columns {missing}")
    return table


def pool_images(
    manifest: pd.DataFrame,
    reserve: pd.DataFrame,
    dims: int,
    limit: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Manifest rows of pool patients with ``dims`` spatial dimensions, in manifest order.

    These are the pretraining images: every image of every non-reserved patient, labelled
    or not; or, with ``limit``, a seeded random subset of them (to study small pools).
    """
    pool = reserve.loc[reserve["part"] == POOL, ["image_id"]]
    rows = manifest.merge(pool, on="image_id")
    rows = rows[rows["spatial_dims"] == dims]
    if limit is not None and limit < len(rows):
        rows = rows.sample(n=limit, random_state=seed).sort_index()
    return rows.reset_index(drop=True)
