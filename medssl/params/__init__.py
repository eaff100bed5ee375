"""Typed ``params.yaml``: one pydantic model per section, validated once at the entry point.

One concept per module:

- :mod:`~medssl.params.base`: :class:`ParamsError`, the strict :class:`Section` base and
  one-line errors that name the key;
- :mod:`~medssl.params.sources`: ``demo``, ``pull``, ``data``, ``ingest``;
- :mod:`~medssl.params.labels`: ``reserve``, ``labels``, ``split``;
- :mod:`~medssl.params.training`: ``model``, ``pretrain``, ``finetune``;
- :mod:`~medssl.params.results`: ``evaluate``, ``export``, ``report``;
- :mod:`~medssl.params.load`: the whole file as :class:`Params`, read and validated.
"""

from medssl.params.base import ParamsError, Section
from medssl.params.labels import LabelsParams, ReserveParams, SplitParams
from medssl.params.load import (
    PARAMS_NAME,
    Params,
    read_params,
    read_yaml,
    section,
    tracked_path,
    validate,
)
from medssl.params.results import EvaluateParams, ExportParams, ReportParams
from medssl.params.sources import (
    DataParams,
    DemoParams,
    IngestParams,
    PullParams,
    ResampleParams,
    SidecarParams,
)
from medssl.params.training import (
    AugmentParams,
    Budget,
    FinetuneParams,
    ModelParams,
    PretrainParams,
)

__all__ = [
    "PARAMS_NAME",
    "AugmentParams",
    "Budget",
    "DataParams",
    "DemoParams",
    "EvaluateParams",
    "ExportParams",
    "FinetuneParams",
    "IngestParams",
    "LabelsParams",
    "ModelParams",
    "Params",
    "ParamsError",
    "PretrainParams",
    "PullParams",
    "ReportParams",
    "ReserveParams",
    "ResampleParams",
    "Section",
    "SidecarParams",
    "SplitParams",
    "read_params",
    "read_yaml",
    "section",
    "tracked_path",
    "validate",
]
