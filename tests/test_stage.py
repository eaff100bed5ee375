"""The stage entry helper: params validated before the stage runs, errors as one line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from medssl.params import Params
from medssl.stage import TRACEBACK_ENV, run_stage, stage_parser
from tests.conftest import REPO


class LabelTrouble(ValueError):
    """Stands in for a stage's own error type (LabelError, DeidError, ...)."""


def params_file(tmp_path: Path, **changes: Any) -> Path:
    """The checked-in params with ``section.key`` values replaced or added."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        params[section][key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_paths_are_required_options_and_params_has_a_default() -> None:
    parser = stage_parser("doc", ("--ingested", "--out"))
    args = parser.parse_args(["--ingested", "a", "--out", "b"])
    assert args.ingested == Path("a") and args.params == Path("params.yaml")
    with pytest.raises(SystemExit):
        parser.parse_args(["--ingested", "a"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"finetune__stepz": 4}, "finetune.stepz: unknown key; did you mean 'steps'?"),
        ({"finetune__steps": "30"}, "finetune.steps: must be a valid integer, got '30'"),
    ],
)
def test_bad_params_stop_before_the_stage_runs(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    ran: list[Params] = []
    path = params_file(tmp_path, **change)
    with pytest.raises(SystemExit) as stop:
        run_stage(lambda _a, p: ran.append(p), None, argv=["--params", str(path)])
    assert stop.value.code == f"error: {path}: {expected}"
    assert not ran


def test_declared_errors_are_one_line_and_others_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = params_file(tmp_path)
    argv = ["--out", str(tmp_path), "--params", str(path)]

    def trouble(_a: argparse.Namespace, _p: Params) -> None:
        raise LabelTrouble("labels.csv: row 3:\n  'path' matches no ingested image")

    with pytest.raises(SystemExit) as stop:
        run_stage(trouble, None, paths=("--out",), errors=(LabelTrouble,), argv=argv)
    assert stop.value.code == "error: labels.csv: row 3: 'path' matches no ingested image"
    with pytest.raises(LabelTrouble):  # not declared: a bug, with its traceback
        run_stage(trouble, None, paths=("--out",), argv=argv)
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(LabelTrouble):
        run_stage(trouble, None, paths=("--out",), errors=(LabelTrouble,), argv=argv)


def test_a_stage_script_stops_on_bad_params_and_leaves_its_outputs_alone(tmp_path: Path) -> None:
    """pipelines/split.py with an unknown key or a wrong type: one line, exit 1, outputs kept."""
    out = tmp_path / "splits"
    out.mkdir()
    (out / "splits.csv").write_text("image_id,patient_key,split\n")
    for change, key in (({"split__validaton": "budget"}, "split.validaton"),
                        ({"finetune__seeds": [0, "1"]}, "finetune.seeds[1]")):  # fmt: skip
        path = params_file(tmp_path, **change)
        cmd = [sys.executable, str(REPO / "pipelines" / "split.py"),
               "--ingested", str(tmp_path / "ingested"), "--reserve", str(tmp_path / "r.csv"),
               "--lists", str(tmp_path), "--splits", str(out / "splits.csv"),
               "--labels", str(out / "labels.csv"), "--params", str(path)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop(TRACEBACK_ENV, None)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"error: {path}: {key}: ")
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert sorted(p.name for p in out.iterdir()) == ["splits.csv"]
        assert (out / "splits.csv").read_text() == "image_id,patient_key,split\n"
