"""The whole DVC pipeline on a tiny configuration, in a scratch copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

TINY = {
    "demo": {"n_patients": 16, "image_size": 48, "n_ct": 1},
    "model": {"image_size": 32},
    "pretrain": {"epochs": 2, "batch_size": 16},
    "finetune": {"budgets": [4, "all"], "epochs": 2},
    "evaluate": {"n_boot": 50},
}


def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MEDSSL_DEID_SECRET", None)
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository holding the pipeline with tiny params, reproduced once."""
    ws = tmp_path_factory.mktemp("pipeline") / "ws"
    ws.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, ws / name)
    for folder in ("pipelines", "medssl"):
        shutil.copytree(REPO / folder, ws / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(ws, "git", "init", "-q")
    _run(ws, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "init")  # fmt: skip
    _run(ws, "dvc", "init", "-q")
    _run(ws, "dvc", "repro")
    return ws


@pytest.mark.slow
def test_results_cover_every_arm_and_budget(workspace: Path) -> None:
    records = json.loads((workspace / "results" / "label_efficiency.json").read_text())
    got = {(r["arm"], r["budget"]) for r in records}
    assert got == {(a, b) for a in ("ssl", "scratch") for b in (4, "all")}
    for r in records:
        assert 0.0 <= r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"] <= 1.0
        assert {"arm", "n_labels", "seed", "auroc", "auprc"} <= set(r)
    shown = _run(workspace, "dvc", "metrics", "show", "--json").stdout
    assert "auroc" in shown
    assert (workspace / "results" / "plots" / "label_efficiency.png").stat().st_size > 1000


@pytest.mark.slow
def test_no_patient_in_two_splits(workspace: Path) -> None:
    splits = pd.read_csv(workspace / "data" / "splits" / "splits.csv")
    assert splits.groupby("patient_key")["split"].nunique().max() == 1
    assert set(splits["split"]) == {"train", "val", "test"}


@pytest.mark.slow
def test_no_fake_phi_in_outputs(workspace: Path) -> None:
    from medssl.demo import write_demo_dataset

    phi = write_demo_dataset(
        workspace.parent / "phi", seed=0, n_patients=16, image_size=48, n_ct=1
    ).phi
    needles = {s for s in phi if len(s) >= 4} | {
        part for s in phi for part in s.split("^") if len(part) >= 4
    }
    for folder in ("data/ingested", "data/splits", "models", "results"):
        for path in (workspace / folder).rglob("*"):
            if path.is_file() and path.suffix != ".gz":
                text = path.read_bytes().decode("latin-1")
                leaks = [n for n in needles if n in text]
                assert not leaks, f"PHI in {path.relative_to(workspace)}"


@pytest.mark.slow
def test_second_repro_is_a_noop(workspace: Path) -> None:
    out = _run(workspace, "dvc", "repro").stdout
    assert "Running stage" not in out


@pytest.mark.slow
def test_bad_label_csv_fails_and_changes_nothing(workspace: Path) -> None:
    good = (workspace / "data" / "raw" / "demo" / "labels.csv").read_text()
    bad = workspace / "bad_labels.csv"
    bad.write_text(good + "xray/NOBODY/none.dcm,1\n")
    results = workspace / "results" / "label_efficiency.json"
    before = results.read_bytes()
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["labels"]["path"] = "bad_labels.csv"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = _run(workspace, "dvc", "repro", check=False)
        assert proc.returncode != 0
        n_rows = good.count("\n") + 1
        assert f"bad_labels.csv: row {n_rows}: 'path' matches no ingested image" in proc.stderr
        assert results.read_bytes() == before
    finally:
        params_file.write_text(original)
