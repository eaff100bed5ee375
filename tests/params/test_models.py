"""Typed params: the checked-in file validates; a bad key is one line naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from medssl.params import (
    DataParams,
    EvaluateParams,
    FinetuneParams,
    IngestParams,
    Params,
    ParamsError,
    PretrainParams,
    ReportParams,
    SidecarParams,
    SplitParams,
    read_params,
    section,
    tracked_path,
    validate,
)
from tests.conftest import REPO


def checked_in() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    return raw


def message(raw: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as err:
        validate(Params, raw)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_the_checked_in_params_validate() -> None:
    p = read_params(REPO / "params.yaml")
    assert p.finetune.budgets == checked_in()["finetune"]["budgets"]
    assert p.finetune.augment.min_crop == 0.8 and p.finetune.augment.noise_std == 0.01
    assert p.ingest.timeout_s == 600 and p.data.sidecar is None


def test_an_unknown_key_is_named_with_the_closest_known_one() -> None:
    raw = checked_in()
    raw["finetune"]["stepz"] = 4
    assert message(raw) == "params.yaml: finetune.stepz: unknown key; did you mean 'steps'?"
    raw = checked_in()
    raw["pretrain"]["vicreg"]["zzz"] = 1.0
    assert message(raw).startswith("params.yaml: pretrain.vicreg.zzz: unknown key; known keys: ")
    raw = checked_in()
    raw["finetun"] = {}
    assert "params.yaml: finetun: unknown key; did you mean 'finetune'?" in message(raw)


def test_a_wrong_type_or_value_is_named_with_what_was_given() -> None:
    raw = checked_in()
    raw["finetune"]["steps"] = "30"
    assert message(raw) == "params.yaml: finetune.steps: must be a valid integer, got '30'"
    raw = checked_in()
    raw["model"]["small_input"] = 1  # no coercion: 1 is not a boolean
    assert message(raw).startswith("params.yaml: model.small_input: must be a valid boolean")
    raw = checked_in()
    raw["finetune"]["budgets"] = [8, "most", True]
    text = message(raw)
    assert "finetune.budgets[1]: a budget is a label count, a fraction or 'all', got 'most'" in text
    assert "finetune.budgets[2]:" in text
    raw = checked_in()
    raw["pretrain"]["lr"] = 0
    assert message(raw) == "params.yaml: pretrain.lr: must be greater than 0, got 0"
    raw = checked_in()
    raw["evaluate"]["patient_aggregation"] = "median"
    assert message(raw).startswith("params.yaml: evaluate.patient_aggregation: must be 'none',")
    raw = checked_in()
    del raw["model"]["encoder"]
    assert message(raw) == "params.yaml: model.encoder: missing key"


def test_many_errors_stay_on_one_line() -> None:
    raw = checked_in()
    for key in ("steps", "eval_every", "batch_size", "knn_k", "pixel_size"):
        raw["finetune"][key] = "x"
    text = message(raw)
    assert text.count("must be a valid integer") == 3 and text.endswith("(and 2 more)")


def test_an_int_is_a_float_and_text_lists_take_numbers() -> None:
    raw = checked_in()
    raw["finetune"]["lr"] = 1
    raw["labels"]["positive"] = [1, "yes"]
    p = validate(Params, raw)
    assert p.finetune.lr == 1.0 and isinstance(p.finetune.lr, float)
    assert p.labels.positive == ["1", "yes"]


def test_pull_needs_a_source_when_enabled() -> None:
    raw = checked_in()
    raw["pull"]["enabled"] = True
    assert message(raw) == "params.yaml: pull.source: is needed when pull.enabled is true"


def test_ingest_null_means_default_and_timeout_null_means_none() -> None:
    ingest = section({"ingest": {"workers": 2, "engine": None, "resample": None}}, "ingest",
                     IngestParams)  # fmt: skip
    assert ingest.engine == "local" and ingest.resample.spacing_2d is None
    assert ingest.timeout_s == 600
    assert section({"ingest": {"workers": 2, "timeout_s": None}}, "ingest",
                   IngestParams).timeout_s is None  # fmt: skip
    with pytest.raises(ParamsError, match=r"^params.yaml: ingest.workers: missing key$"):
        section({"ingest": {}}, "ingest", IngestParams)
    with pytest.raises(ParamsError, match=r"^params.yaml: data: missing section$"):
        section({}, "data", DataParams)


def test_a_bare_sidecar_path_is_a_sidecar() -> None:
    data = validate(DataParams, {"sources": ["a"], "demo_mode": True, "sidecar": "s.csv"})
    assert data.sidecar == SidecarParams(path="s.csv")


def test_finetune_augment_defaults_to_the_old_fixed_values() -> None:
    raw = checked_in()["finetune"]
    raw.pop("augment", None)
    assert validate(FinetuneParams, raw).augment.model_dump() == {
        "min_crop": 0.8,
        "noise_std": 0.01,
    }


def test_tracked_path_must_lie_in_its_folder(tmp_path: Path) -> None:
    assert tracked_path(None, "labels.path", tmp_path) is None
    assert tracked_path(str(tmp_path / "a.csv"), "labels.path", tmp_path) == tmp_path / "a.csv"
    with pytest.raises(ParamsError, match=r"labels.path: must name a file inside"):
        tracked_path("/elsewhere/a.csv", "labels.path", tmp_path)


def choices(model: type[Any], name: str) -> set[Any]:
    return set(get_args(model.model_fields[name].annotation))


def test_choices_are_the_library_ones() -> None:
    """The models name choices literally (no heavy imports); they must stay the library's."""
    from medssl.burned_in import POLICIES
    from medssl.data.splits import PROTOCOLS
    from medssl.eval.protocol import AGGREGATIONS, COMPARISONS
    from medssl.ingest.codes import DROP_ACTIONS
    from medssl.io.sidecar import MATCH_MODES
    from medssl.report.saliency import METHODS

    assert choices(IngestParams, "burned_in_text") == set(POLICIES)
    assert choices(IngestParams, "drop_action") == set(DROP_ACTIONS)
    assert choices(SidecarParams, "match") == set(MATCH_MODES)
    assert choices(SplitParams, "validation") == set(PROTOCOLS)
    assert choices(EvaluateParams, "patient_aggregation") == set(AGGREGATIONS)
    assert choices(EvaluateParams, "compare") == set(COMPARISONS)
    assert choices(ReportParams, "saliency") == {"auto", *METHODS}
    assert choices(PretrainParams, "precision") == {"fp32", "bf16"}


def test_the_cli_builds_the_stage_models() -> None:
    """``medssl ingest`` flags and the ``ingest``/``data`` params give the same options."""
    from medssl.cli import _ingest_params, build_parser
    from medssl.ingest import ingest_options

    args = build_parser().parse_args(["ingest", "src", "--out", "o", "--workers", "2", "--demo"])
    ingest, data = _ingest_params(args)
    assert ingest == IngestParams(workers=2)
    assert data == DataParams(sources=["src"], demo_mode=True)
    assert ingest_options(ingest, data) == ingest_options(IngestParams(workers=2))
