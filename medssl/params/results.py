"""What is reported: the ``evaluate``, ``export`` and ``report`` sections."""

from __future__ import annotations

from typing import Literal

from medssl.params.base import PositiveInt, Section


class EvaluateParams(Section):
    """``evaluate``: bootstrap, patient aggregation and the test against the baselines."""

    n_boot: PositiveInt
    seed: int
    patient_aggregation: Literal["none", "max", "mean"]
    compare: Literal["delong", "bootstrap"]


class ExportParams(Section):
    """``export``: which arm goes into the MONAI bundle and its model card's text."""

    arm: str
    name: str
    version: str
    authors: str
    copyright: str
    intended_use: str


class ReportParams(Section):
    """``report``: sample images and saliency cases shown."""

    samples_per_class: PositiveInt
    saliency_cases: PositiveInt
    saliency: Literal["auto", "gradcam", "occlusion"]
    seed: int
