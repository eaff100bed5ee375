"""Who is tested and which labels count: the ``reserve``, ``labels`` and ``split`` sections."""

from __future__ import annotations

from typing import Literal

from medssl.params.base import Section, TextList


class ReserveParams(Section):
    """``reserve``: the label-independent evaluation reserve (hashed, or a listed CSV)."""

    fraction: float
    seed: int
    path: str | None
    key: str


class LabelsParams(Section):
    """``labels``: the label CSV under ``labels/`` and how its values read."""

    path: str | None
    key: str
    column: str
    positive: TextList
    negative: TextList


class SplitParams(Section):
    """``split``: which labels make the choices (``budget``: counted in it; ``oracle``)."""

    validation: Literal["budget", "oracle"]
    budget_val_fraction: float
    cross_fit: bool = False
    oracle_val_fraction: float
    seed: int
