"""The reserve stage's work: draw the evaluation reserve as the ``reserve`` params say.

Kept apart from :mod:`medssl.data.reserve`, which the pretrain stage imports and which must
not depend on the pseudonymisation secret.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medssl.data.manifest import MANIFEST_NAME, read_manifest, unusable_sources
from medssl.data.reserve import hashed_reserve, listed_reserve, partition
from medssl.io.pseudonym import Pseudonymizer, secret_from_env
from medssl.params import ReserveParams, tracked_path


def draw_reserve(ingested: Path, lists: Path, params: ReserveParams, *, demo: bool) -> pd.DataFrame:
    """Each ingested image's side: the pool or the label-independent reserve.

    Args:
        ingested: the ingest stage's folder (manifest, quarantine, skip list).
        lists: the tracked folder a listed reserve (``reserve.path``) must lie in.
        params: the typed ``reserve`` section.
        demo: ``data.demo_mode`` (the demo secret; otherwise ``$MEDSSL_DEID_SECRET``).

    Returns:
        ``image_id, patient_key, part`` (:func:`medssl.data.reserve.partition`).

    Raises:
        medssl.data.reserve.ReserveError: a bad fraction or list (file and rows named).
        medssl.params.ParamsError: ``reserve.path`` outside ``lists``.
        medssl.io.pseudonym.DeidError: no secret outside demo mode.
    """
    manifest = read_manifest(ingested / MANIFEST_NAME)
    pseudo = Pseudonymizer(secret_from_env(demo=demo))
    listed = tracked_path(params.path, "reserve.path", lists)
    if listed is None:
        patients = manifest["patient_key"].tolist()
        reserved = hashed_reserve(patients, params.fraction, params.seed, pseudo)
    else:
        unusable = unusable_sources(ingested)
        reserved = listed_reserve(listed, manifest, unusable, pseudo, params.key)
    return partition(manifest, reserved)
