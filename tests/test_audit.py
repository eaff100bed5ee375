"""Run record, verification and reproduction (medssl/audit/, pipelines/audit.py, CLI).

Unit tests use small synthetic workspaces. The slow tests run the whole pipeline on a tiny
configuration once (module fixture), then check the record, `medssl audit verify`, the
report in headless Chromium, the MONAI bundle on one ingested image, and determinism:
`medssl audit reproduce` re-runs every recorded stage in a fresh workspace and must give
the same output hashes (CPU), and forced re-runs of audit and report must give the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from medssl import audit
from medssl.cli import main as cli_main
from tests.conftest import REPO

# --------------------------------------------------------------------------- hashing


def _dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_hashes_match_dvc_add(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub" / "__pycache__").mkdir(parents=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    (data / "sub" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    (data / "sub" / "c.pyc").write_bytes(b"junk")
    (data / "sub" / "keep.pyc").write_bytes(b"kept by a negation")
    (tmp_path / ".dvcignore").write_text("# comment\n__pycache__/\n*.pyc\n!keep.pyc\n")
    hashes = audit.hash_paths(["data", "data/a.csv", "missing"], tmp_path)  # before dvc init
    assert _dvc(tmp_path, "init", "--no-scm", "-q").returncode == 0
    assert _dvc(tmp_path, "add", "-q", "data").returncode == 0
    out = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    assert out["nfiles"] == 3  # a.csv, b.bin, keep.pyc
    assert hashes["data"] == out["md5"]
    assert audit.hash_paths(["data"], tmp_path) == {"data": out["md5"]}
    assert hashes["data/a.csv"] == hashlib.md5(b"x,y\n1,2\n").hexdigest()
    assert hashes["missing"] is None


# --------------------------------------------------------------------------- lock and stages

LOCK = {
    "schema": "2.0",
    "stages": {
        "split": {
            "cmd": "python split.py",
            "deps": [{"path": "data/ingested", "hash": "md5", "md5": "d1.dir"}],
            "params": {"params.yaml": {"split": {"seed": 0}}},
            "outs": [{"path": "data/splits/splits.csv", "hash": "md5", "md5": "sp1"}],
        },
        "finetune@ssl-8-0": {
            "cmd": "python finetune.py",
            "deps": [{"path": "data/splits/splits.csv", "hash": "md5", "md5": "sp1"}],
            "outs": [{"path": "models/finetune/ssl-8-0", "hash": "md5", "md5": "m1.dir"}],
        },
        "finetune@ssl-4-0": {"cmd": "old", "deps": [], "outs": []},
        "audit": {"cmd": "a", "deps": [], "outs": [{"path": "results/audit/run_record.json"}]},
        "report": {"cmd": "r", "deps": [{"path": "results/audit/run_record.json"}], "outs": []},
    },
}


def test_read_lock_and_producer(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    stages = audit.read_lock(tmp_path / "dvc.lock")
    assert stages["split"]["deps"] == {"data/ingested": "d1.dir"}
    assert stages["split"]["params"] == {"params.yaml": {"split": {"seed": 0}}}
    assert audit.producer_of("models/finetune/ssl-8-0/model.pt", stages) == "finetune@ssl-8-0"
    assert audit.producer_of("data/splits/splits.csv", stages) == "split"
    assert audit.producer_of("data/raw", stages) is None
    (tmp_path / "bad.lock").write_text("stages: {}\n")
    with pytest.raises(audit.AuditError, match="schema"):
        audit.read_lock(tmp_path / "bad.lock")


def test_stage_names_follow_dvc_matrix_naming() -> None:
    dvc_yaml = {
        "stages": {
            "split": {"cmd": "x"},
            "finetune": {
                "matrix": {"arm": "${finetune.arms}", "budget": [8, "all"], "seed": [0]},
                "cmd": "y",
            },
            "sweep": {"matrix": {"cfg": [{"a": 1}, {"a": 2}], "flag": [True]}, "cmd": "z"},
            "each": {"foreach": [1, "b"], "do": {"cmd": "e"}},
            "each_map": {"foreach": {"k1": {"x": 1}}, "do": {"cmd": "e"}},
            "each_list": {"foreach": [{"x": 1}], "do": {"cmd": "e"}},
        }
    }
    names = audit.pipeline_stage_names(dvc_yaml, {"finetune": {"arms": ["ssl", "scratch"]}})
    assert names == {
        "split",
        "finetune@ssl-8-0",
        "finetune@ssl-all-0",
        "finetune@scratch-8-0",
        "finetune@scratch-all-0",
        "sweep@cfg0-true",
        "sweep@cfg1-true",
        "each@1",
        "each@b",
        "each_map@k1",
        "each_list@0",
    }


def test_recorded_stages_drop_stale_self_and_readers(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(LOCK))
    lock = audit.read_lock(tmp_path / "dvc.lock")
    current = {"split", "finetune@ssl-8-0", "audit", "report"}
    got = audit.recorded_stages(lock, current, "results/audit/run_record.json")
    assert sorted(got) == ["finetune@ssl-8-0", "split"]


# --------------------------------------------------------------------------- metrics

RECORDS: list[dict[str, Any]] = [
    {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "auroc": 0.7,
     "auroc_ci_low": 0.5, "auroc_ci_high": 0.9, "auprc": 0.6, "headline": True},
    {"arm": "ssl", "mode": "linear", "n_labels": 8, "seed": 0, "auroc": 0.8,
     "auroc_ci_low": 0.6, "auroc_ci_high": 0.95, "headline": False},
    {"arm": "ssl", "mode": "full", "n_labels": 4, "seed": 0, "auroc": 0.6,
     "auroc_ci_low": 0.4, "auroc_ci_high": 0.8, "headline": True},
]  # fmt: skip


def test_headline_records_use_flags_else_largest_budget() -> None:
    flagged = audit.headline_records(RECORDS)
    assert [(r["mode"], r["n_labels"]) for r in flagged] == [("full", 4), ("full", 8)]
    unflagged = [{k: v for k, v in r.items() if k != "headline"} for r in RECORDS]
    top = audit.headline_records(unflagged)
    assert [(r["mode"], r["n_labels"]) for r in top] == [("full", 8), ("linear", 8)]


def test_headline_metrics_name_their_stages(tmp_path: Path) -> None:
    run = tmp_path / "models" / "finetune" / "ssl-8-0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"arm": "ssl", "budget": 8, "n_labels": 8, "seed": 0}))
    stages = {
        "finetune@ssl-8-0": {"outs": {"models/finetune/ssl-8-0": "x.dir"}, "deps": {}},
        "evaluate": {"outs": {"results/label_efficiency.json": "y"}, "deps": {}},
    }
    got = audit.headline_metrics(
        RECORDS[:1], stages, "results/label_efficiency.json", tmp_path / "models/finetune", tmp_path
    )
    assert got == [
        {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "metric": "auroc",
         "value": 0.7, "ci_low": 0.5, "ci_high": 0.9, "stages": ["finetune@ssl-8-0", "evaluate"]}
    ]  # fmt: skip


def test_compare_metrics_within_tolerance() -> None:
    base = {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "metric": "auroc"}
    rec = [{**base, "value": 0.7, "ci_low": 0.5, "ci_high": 0.9}]
    assert audit.compare_metrics(rec, [{**base, "value": 0.7 + 1e-9, "ci_low": 0.5,
                                        "ci_high": 0.9}], 1e-6) == []  # fmt: skip
    bad = audit.compare_metrics(rec, [{**base, "value": 0.71, "ci_low": 0.5, "ci_high": 0.9}], 1e-6)
    assert bad == ["metric ssl full n=8 seed=0 auroc value: 0.71 != recorded 0.7"]
    assert audit.compare_metrics(rec, [], 1e-6) == [
        "metric ssl full n=8 seed=0 auroc: missing in the re-run"
    ]


def test_seeds_and_flatten() -> None:
    params = {"split": {"seed": 0}, "finetune": {"seeds": [0, 1], "lr": 0.1}, "x": 1}
    assert audit.seeds_of(params) == {"split.seed": 0, "finetune.seeds": [0, 1]}
    assert audit.flatten({"a": {"b": {"c": 1}}, "d": [1]}) == {"a.b.c": 1, "d": [1]}


# --------------------------------------------------------------------------- git


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


def test_git_state_ignores_pipeline_outputs(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "code.py")
    _git(tmp_path, "commit", "-q", "-m", "c")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "metrics.json").write_text("{}")
    (tmp_path / "results" / ".gitignore").write_text("/index.html\n")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    state = audit.git_state(tmp_path, generated=["results/metrics.json"])
    assert state["dirty"] is False and len(state["commit"]) == 40
    (tmp_path / "code.py").write_text("x = 2\n")
    assert audit.git_state(tmp_path, generated=["results/metrics.json"])["dirty"] is True
    assert audit.git_state(tmp_path / "nowhere")["commit"] is None


# --------------------------------------------------------------------------- verify


def _small_workspace(root: Path) -> dict[str, Any]:
    """Files, a record of them, and the record written to results/audit."""
    (root / "data").mkdir()
    (root / "data" / "x.csv").write_text("a\n1\n")
    (root / "models").mkdir()
    (root / "models" / "m.pt").write_bytes(b"\x00\x01")
    (root / "medssl").mkdir()
    (root / "medssl" / "code.py").write_text("print(1)\n")
    params = {"train": {"seed": 0, "lr": 0.1}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    h = audit.hash_paths(["data/x.csv", "models", "medssl"], root)
    stages = {
        "train": {
            "cmd": "python t.py",
            "deps": {"data/x.csv": h["data/x.csv"]},
            "outs": {"models": h["models"]},
            "params": {"params.yaml": {"train.lr": 0.1}},
        }
    }
    record = audit.build_record(
        stages=stages,
        params=params,
        artifacts={"model": {"path": "models", "md5": h["models"]}},
        code={"git_commit": None, "git_dirty": None, "n_changed": 0,
              "hashes": {"medssl": h["medssl"]}},
        environment={"packages": audit.package_versions()},
        determinism={},
        deid_profile={},
        splits={"patients_in_several_splits": 0},
        metrics=[],
    )  # fmt: skip
    audit.write_record(record, root / "results" / "audit" / "run_record.json")
    return record


def test_verify_passes_then_names_each_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _small_workspace(tmp_path)
    assert audit.verify_record(record, tmp_path) == []
    rec_path = str(tmp_path / "results" / "audit" / "run_record.json")
    assert cli_main(["audit", "verify", rec_path, "--root", str(tmp_path)]) == 0
    (tmp_path / "data" / "x.csv").write_text("a\n2\n")
    (tmp_path / "models" / "m.pt").unlink()
    (tmp_path / "medssl" / "code.py").write_text("print(2)\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": {"seed": 0, "lr": 0.2}}))
    capsys.readouterr()
    assert cli_main(["audit", "verify", rec_path, "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for needle in (
        "stage train: input data/x.csv: md5",
        "stage train: output models: md5",
        "artifact model: models: md5",
        "code medssl: md5",
        "param params.yaml:train.lr: 0.2 != recorded 0.1",
        "5 mismatch(es)",
    ):
        assert needle in out, out


def test_verify_rejects_a_missing_or_foreign_record(tmp_path: Path) -> None:
    assert cli_main(["audit", "verify", str(tmp_path / "none.json")]) == 2
    (tmp_path / "r.json").write_text(json.dumps({"record_version": 99}))
    with pytest.raises(audit.AuditError, match="record_version"):
        audit.read_record(tmp_path / "r.json")


def test_prepare_workspace_copies_inputs_not_outputs(tmp_path: Path) -> None:
    root, work = tmp_path / "root", tmp_path / "work"
    work.mkdir()
    (root / "data" / "raw" / "demo").mkdir(parents=True)
    (root / "data" / "raw" / "site").mkdir()
    (root / "data" / "raw" / "demo" / "x.dcm").write_bytes(b"1")
    (root / "data" / "raw" / "site" / "y.dcm").write_bytes(b"2")
    (root / "medssl" / "__pycache__").mkdir(parents=True)
    (root / "medssl" / "a.py").write_text("")
    (root / "dvc.yaml").write_text("stages: {}\n")
    record = {
        "stages": {
            "demo_data": {"deps": {"medssl/a.py": "h"}, "outs": {"data/raw/demo": "d"}},
            "ingest": {"deps": {"data/raw": "r", "data/raw/demo": "d"}, "outs": {}},
        },
        "code": {"hashes": {"medssl": "c", "dvc.yaml": "y"}},
        "params": {"demo": {"seed": 1}},
    }
    names = audit.prepare_workspace(record, root, work)
    assert names == ["demo_data", "ingest"]
    assert (work / "data" / "raw" / "site" / "y.dcm").exists()
    assert not (work / "data" / "raw" / "demo").exists()  # regenerated by demo_data
    assert (work / "medssl" / "a.py").exists() and not (work / "medssl" / "__pycache__").exists()
    assert yaml.safe_load((work / "params.yaml").read_text()) == {"demo": {"seed": 1}}


# --------------------------------------------------------------------------- the pipeline

TINY = {
    "demo": {
        "n_patients": 16,
        "image_size": 48,
        "n_ct": 1,
        "images_per_patient": 3,
        "label_fraction": 0.75,
        "n_full_size": 0,
    },  # fmt: skip
    "model": {"image_size": 32},
    "pretrain": {"epochs": 1, "batch_size": 16},
    "finetune": {
        "arms": ["ssl"],
        "budgets": ["all"],
        "seeds": [0],
        "modes": {"ssl": ["full"]},
        "headline": {"ssl": "full"},
        "steps": 2,
        "eval_every": 1,
    },
    "evaluate": {"n_boot": 50},
}


def _env(ws: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(ws)  # the copied code runs, not the checkout's
    env.pop("MEDSSL_DEID_SECRET", None)
    return env


def _run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=ws, env=_env(ws), capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _tiny_params() -> dict[str, Any]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    return params


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git + DVC repository with the tiny pipeline reproduced once."""
    ws = tmp_path_factory.mktemp("audit") / "ws"
    ws.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, ws / name)
    for folder in ("pipelines", "medssl", "weights"):
        shutil.copytree(REPO / folder, ws / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (ws / "params.yaml").write_text(yaml.safe_dump(_tiny_params(), sort_keys=False))
    _run(ws, "git", "init", "-q")
    _run(ws, sys.executable, "-m", "dvc", "init", "-q")
    _run(ws, "git", "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    _run(ws, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    _run(ws, sys.executable, "-m", "dvc", "repro")
    return ws


@pytest.mark.slow
def test_record_covers_every_stage(workspace: Path) -> None:
    record = audit.read_record(workspace / "results" / "audit" / "run_record.json")
    lock = audit.read_lock(workspace / "dvc.lock")
    assert set(record["stages"]) == set(lock) - {"audit", "report"}
    for name, stage in record["stages"].items():
        assert stage["outs"] == lock[name]["outs"], name
    assert record["splits"]["patients_in_several_splits"] == 0
    assert record["code"]["git_commit"] and record["code"]["git_dirty"] is False
    assert {"torch", "monai", "pydicom", "nibabel", "dvc", "numpy", "python"} <= set(
        record["environment"]["packages"]
    )
    assert record["deid_profile"]["implementation"].startswith("medssl-deid/")
    assert {"manifest", "label_set", "splits", "encoder", "runs", "bundle", "metrics"} <= set(
        record["artifacts"]
    )
    heads = {(m["arm"], m["metric"]) for m in record["headline_metrics"]}
    assert {("ssl", "auroc"), ("ssl", "auprc")} <= heads
    for m in record["headline_metrics"]:
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
        assert m["stages"][-1] == "evaluate" and m["stages"][0].startswith("finetune@")
    assert record["seeds"]["split.seed"] == 0
    text = json.dumps(record)
    assert str(workspace) not in text  # no absolute paths


@pytest.mark.slow
def test_verify_passes_on_the_fresh_run(workspace: Path) -> None:
    proc = _run(workspace, sys.executable, "-m", "medssl.cli", "audit", "verify")
    assert "run_record.json: OK" in proc.stdout


@pytest.mark.slow
def test_report_bundle_and_record_hold_no_phi(workspace: Path) -> None:
    from medssl.demo import write_demo_dataset

    demo = TINY["demo"]
    phi = write_demo_dataset(
        workspace.parent / "phi", seed=0, n_patients=demo["n_patients"],
        image_size=demo["image_size"], n_ct=demo["n_ct"],
    ).phi  # fmt: skip
    needles = {s for s in phi if len(s) >= 4} | {
        part for s in phi for part in s.split("^") if len(part) >= 4
    }
    splits = pd.read_csv(workspace / "data" / "splits" / "splits.csv", dtype=str)
    keys = set(splits["patient_key"]) | set(splits["image_id"])
    for rel in ("results/report/index.html", "results/audit/run_record.json", "models/bundle"):
        paths = [workspace / rel] if (workspace / rel).is_file() else (workspace / rel).rglob("*")
        for path in paths:
            if path.is_file() and path.suffix != ".pt":
                # base64 image data is pixels, not text, and can spell a 4-letter name by chance
                text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())
                assert not [n for n in needles if n in text], f"PHI in {path}"
                if rel != "results/audit/run_record.json":
                    assert not [k for k in keys if k in text], f"patient/image key in {path}"


@pytest.mark.slow
def test_report_renders_in_chromium(workspace: Path, tmp_path: Path) -> None:
    from tests.report.chromium import find_chromium, render

    html = (workspace / "results" / "report" / "index.html").read_text()
    assert "http://" not in html.replace("http://www.w3.org", "") and 'src="http' not in html
    for title in ("Data", "Sample images", "Label efficiency", "Metrics", "Saliency", "Run record"):
        assert f">{title}" in html
    if find_chromium() is None:
        pytest.skip("chromium not installed (CI installs it: see .ci/run)")
    result = render(workspace / "results" / "report" / "index.html", tmp_path)
    assert result.n_images >= 5 and result.n_broken == 0
    assert result.non_blank


@pytest.mark.slow
def test_bundle_runs_on_an_ingested_image(workspace: Path, tmp_path: Path) -> None:
    bundle = workspace / "models" / "bundle"
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    scores = pd.read_csv(
        workspace / "models" / "finetune" / "ssl-all-0" / "scores.csv", dtype={"image_id": str}
    )
    row = scores[(scores["mode"] == "full") & (scores["split"] == "test")].iloc[0]
    out = tmp_path / "prediction.json"
    code = (
        "import sys; from monai.bundle import run; "
        "run(config_file=sys.argv[1], meta_file=sys.argv[2], logging_file=False, "
        "bundle_root=sys.argv[3], image=sys.argv[4], output=sys.argv[5])"
    )
    manifest = pd.read_csv(workspace / "data" / "ingested" / "manifest.csv", dtype=str)
    image = (
        workspace
        / "data"
        / "ingested"
        / manifest.set_index("image_id").loc[row["image_id"], "nifti"]
    )
    _run(
        workspace, sys.executable, "-c", code, str(bundle / "configs" / "inference.json"),
        str(bundle / "configs" / "metadata.json"), str(bundle), str(image), str(out),
    )  # fmt: skip
    verdict = json.loads(out.read_text())
    assert verdict["probability"] == pytest.approx(row["score"], abs=1e-5)
    assert verdict["threshold"] == meta["medssl"]["threshold_spec90"]


@pytest.mark.slow
def test_two_runs_give_identical_outputs(workspace: Path, tmp_path: Path) -> None:
    """Determinism: a fresh re-run of every recorded stage, and a forced re-run of the report.

    (The record itself is built from hashes, params and versions only: no clock.)
    """
    lock = audit.read_lock(workspace / "dvc.lock")
    proc = subprocess.run(
        [sys.executable, "-m", "medssl.cli", "audit", "reproduce", "--workdir", str(tmp_path)],
        cwd=workspace, env=_env(workspace), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "metrics and output hashes match" in proc.stdout
    _run(workspace, sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "report")
    assert audit.read_lock(workspace / "dvc.lock")["report"]["outs"] == lock["report"]["outs"]
