"""Reading ``params.yaml`` into :class:`Params`, one typed model per section, once.

Stage scripts get a validated :class:`Params` from :mod:`medssl.stage` and pass plain
values or section models down; nothing below the entry point reads the file again. Every
section must be present (an unknown section or key is refused), so the first stage that
runs stops on any bad value, before anything is trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from medssl.params.base import ParamsError, Section, params_error
from medssl.params.labels import LabelsParams, ReserveParams, SplitParams
from medssl.params.results import EvaluateParams, ExportParams, ReportParams
from medssl.params.sources import DataParams, DemoParams, IngestParams, PullParams
from medssl.params.training import FinetuneParams, ModelParams, PretrainParams

M = TypeVar("M", bound=BaseModel)
#: What error messages call the params file.
PARAMS_NAME = "params.yaml"


class Params(Section):
    """The whole ``params.yaml``: one model per section, in pipeline order."""

    demo: DemoParams
    pull: PullParams
    data: DataParams
    ingest: IngestParams
    reserve: ReserveParams
    labels: LabelsParams
    split: SplitParams
    model: ModelParams
    pretrain: PretrainParams
    finetune: FinetuneParams
    evaluate: EvaluateParams
    export: ExportParams
    report: ReportParams


def read_yaml(path: str | Path = PARAMS_NAME) -> dict[str, Any]:
    """The params file as a plain mapping (the run record keeps it as written).

    Raises:
        ParamsError: when the file is missing, unparsable or not a mapping.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise ParamsError(f"{p}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{p}: expected a mapping of sections at top level")
    return data


def read_params(path: str | Path = PARAMS_NAME) -> Params:
    """Read and validate a params file.

    Raises:
        ParamsError: one line naming each offending key (missing, unknown, wrong type or
            out of range).
    """
    return validate(Params, read_yaml(path), str(path))


def validate(
    model: type[M], data: Any, where: str = PARAMS_NAME, prefix: tuple[str, ...] = ()
) -> M:
    """``model`` from ``data``, with a validation failure as one :class:`ParamsError` line.

    Args:
        model: a section model or :class:`Params`.
        data: the mapping to validate.
        where: what the data came from, for the message.
        prefix: keys above ``data`` in the file, for the message.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise params_error(exc, model, where, prefix) from None


def section(params: Mapping[str, Any], name: str, model: type[M]) -> M:
    """One section of a parsed params mapping, validated (errors name ``name.key``).

    Raises:
        ParamsError: a missing section, or one line naming each offending key.
    """
    if name not in params:
        raise ParamsError(f"{PARAMS_NAME}: {name}: missing section")
    return validate(model, params[name], PARAMS_NAME, (name,))


def tracked_path(value: str | None, key: str, folder: Path) -> Path | None:
    """A file named by params that must lie inside ``folder`` (a folder DVC tracks).

    Label sets and reserve lists live outside the ingested sources, in a folder that only
    the stages using them depend on: a new label set then never re-runs ingestion or
    pretraining. A file elsewhere would not be tracked, so it is refused.

    Args:
        value: the path from params, or None.
        key: its dotted key, e.g. ``"labels.path"``.
        folder: the tracked folder (``labels/``).

    Returns:
        The path, or None when the value is null.

    Raises:
        ParamsError: naming the key when the path lies outside ``folder``.
    """
    if value is None:
        return None
    path = Path(value)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ParamsError(
            f"{PARAMS_NAME}: {key}: must name a file inside {folder}/ (the folder DVC tracks "
            f"for it), got {value!r}"
        )
    return path
