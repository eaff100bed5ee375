"""Seeded randomness: independent generator streams, deterministic UIDs, dates and times.

Every byte the demo writer produces depends only on the data set seed and the size
arguments: each kind of item draws from its own stream (:func:`stream_rng`), so adding an
item of one kind never shifts the random numbers of another, and UIDs come from
:func:`pydicom.uid.generate_uid` with seeded entropy.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pydicom.uid import UID, generate_uid

__all__ = [
    "BROKEN_STREAM",
    "CT_STREAM",
    "MR_STREAM",
    "PATIENT_STREAM",
    "PLAN_STREAM",
    "XRAY_STREAM",
    "random_date",
    "random_time",
    "seeded_uid",
    "stream_rng",
]

# Seed-sequence stream keys: stream_rng(seed, <stream>, *index) gives independent generators.
PATIENT_STREAM = 1
PLAN_STREAM = 2
XRAY_STREAM = 3
CT_STREAM = 4
MR_STREAM = 5
BROKEN_STREAM = 6


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """An independent generator for one stream and item, e.g. ``(seed, XRAY_STREAM, p, i)``.

    Args:
        seed: Data set seed.
        stream: One of the ``*_STREAM`` constants.
        *index: Item indices within the stream.

    Returns:
        A PCG64 generator seeded from the NumPy SeedSequence ``[seed, stream, *index]``.
    """
    return np.random.default_rng([seed, stream, *index])


def seeded_uid(seed: int, *parts: object) -> UID:
    """A valid, deterministic UID (PS3.5 9.1) from the seed and a role key.

    Args:
        seed: Data set seed.
        *parts: Role key, e.g. ``("xray-sop", patient, image)``; each part is ``str()``-ed.

    Returns:
        A UID under pydicom's root, the same for the same seed and key.
    """
    return generate_uid(entropy_srcs=["medssl-demo", str(seed), *map(str, parts)])


def random_date(rng: np.random.Generator, first: dt.date, last: dt.date) -> str:
    """A ``YYYYMMDD`` date drawn uniformly in ``[first, last]``."""
    ordinal = int(rng.integers(first.toordinal(), last.toordinal() + 1))
    return dt.date.fromordinal(ordinal).strftime("%Y%m%d")


def random_time(rng: np.random.Generator) -> str:
    """A ``HHMMSS`` time during working hours."""
    seconds = int(rng.integers(7 * 3600, 19 * 3600))
    return f"{seconds // 3600:02d}{seconds % 3600 // 60:02d}{seconds % 60:02d}"
