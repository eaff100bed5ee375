"""The whole DVC pipeline on a tiny configuration, in a scratch copy of the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO

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
    "pretrain": {"epochs": 2, "batch_size": 16},
    "finetune": {"budgets": [8, "all"], "seeds": [0, 1], "steps": 4, "eval_every": 2},
    "evaluate": {"n_boot": 50},
}


def _run(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["OMP_NUM_THREADS"] = "1"  # tiny tensors: one thread is faster on a shared machine
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
    for folder in ("pipelines", "medssl", "weights"):
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
def test_results_cover_every_arm_mode_and_budget(workspace: Path) -> None:
    records = json.loads((workspace / "results" / "label_efficiency.json").read_text())
    modes = {"ssl": {"linear", "full", "knn"}, "scratch": {"full"}, "pixels": {"logistic", "knn"}}
    got = {(r["arm"], r["mode"], r["budget"]) for r in records}
    assert got == {(a, m, b) for a, ms in modes.items() for m in ms for b in (8, "all")}
    assert {r["seed"] for r in records} == {0, 1}
    required = {"arm", "mode", "n_labels", "seed", "auroc", "auroc_ci_low", "auroc_ci_high"}
    required |= {"auprc", "headline", "val_auroc", "sens_at_spec90", "sens_at_spec95", "ece"}
    required |= {"brier", "tn", "fp", "fn", "tp", "p_vs_scratch", "p_vs_pixels"}
    for r in records:
        assert required <= set(r)
        assert 0.0 <= r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"] <= 1.0
        assert r["headline_rule"].startswith("auto")  # finetune.headline: auto
        assert (r["p_vs_scratch"] is None) == (r["arm"] == "scratch")
    heads = pd.DataFrame(records).groupby(["arm", "budget", "seed"])["headline"].sum()
    assert (heads == 1).all()  # one headline mode per arm x budget x seed
    n_labels = {r["budget"]: r["n_labels"] for r in records}
    assert n_labels[8] == 8 < n_labels["all"]
    for r in records:  # every choice was made on labels counted inside the budget
        assert r["val_protocol"] == "budget" and 2 <= r["n_val_labels"] < r["n_labels"]
    seeds = json.loads((workspace / "results" / "label_efficiency_seeds.json").read_text())
    per_mode = [r for r in seeds if not r["mode"].startswith("headline(")]  # auto rows aside
    assert {(r["arm"], r["mode"], r["budget"]) for r in per_mode} == got
    assert all(r["n_seeds"] == 2 and r["auroc_min"] <= r["auroc_mean"] for r in per_mode)
    shown = _run(workspace, "dvc", "metrics", "show", "--json").stdout
    assert "auroc" in shown
    plots = workspace / "results" / "plots"
    assert (plots / "label_efficiency.png").stat().st_size > 1000
    for kind in ("roc", "pr", "calibration"):
        assert {p.name for p in (plots / kind).iterdir()} == {
            "ssl.json",
            "scratch.json",
            "pixels.json",
        }
    assert "| labels | arm | mode |" in (workspace / "results" / "label_efficiency.md").read_text()
    rendered = _run(workspace, "dvc", "plots", "show", "--json").stdout
    assert "roc/ssl.json" in rendered and "label_efficiency.csv" in rendered


@pytest.mark.slow
def test_no_patient_in_two_splits(workspace: Path) -> None:
    splits = pd.read_csv(workspace / "data" / "splits" / "splits.csv")
    assert splits.groupby("patient_key")["split"].nunique().max() == 1
    assert set(splits["split"]) == {"train", "test"}  # budget protocol: no oracle split
    reserve = pd.read_csv(workspace / "data" / "reserve" / "reserve.csv")
    merged = splits.merge(reserve, on=["image_id", "patient_key"])
    assert len(merged) == len(splits) == len(reserve)
    assert (merged["split"] == "test").equals(merged["part"] == "reserve")


@pytest.mark.slow
def test_no_fake_phi_in_outputs(workspace: Path) -> None:
    from medssl.demo import write_demo_dataset

    phi = write_demo_dataset(
        workspace.parent / "phi", seed=0, n_patients=16, image_size=48, n_ct=1
    ).phi
    needles = {s for s in phi if len(s) >= 4} | {
        part for s in phi for part in s.split("^") if len(part) >= 4
    }
    # digits-only needles (IDs, dates) must stand alone: not inside a longer run of digits
    patterns = [
        (n.encode(), re.compile(rb"(?<!\d)" + re.escape(n.encode()) + rb"(?!\d)"))
        if n.isdigit()
        else (n.encode(), re.compile(re.escape(n.encode())))
        for n in needles
    ]
    for folder in ("data/ingested", "data/splits", "models", "results"):
        for path in (workspace / folder).rglob("*"):
            if path.is_file() and path.suffix != ".gz":
                data = _searchable_bytes(path)
                leaks = [p.pattern for n, p in patterns if n in data and p.search(data)]
                assert not leaks, f"PHI in {path.relative_to(workspace)}"


def test_burned_in_identity_never_reaches_an_output(workspace: Path) -> None:
    """The demo's radiographs with the patient's name, ID and birth date in the pixels
    (BurnedInAnnotation absent) are quarantined by the default policy, so no image, sample
    or saliency map shows them; the quarantine message names the rule only."""
    from medssl.demo import BURNED_TEXT_CASES

    quarantine = (workspace / "data" / "ingested" / "quarantine.csv").read_text()
    rows = [line for line in quarantine.splitlines() if ",burned_in_text," in line]
    assert len(rows) == len(BURNED_TEXT_CASES)
    assert all("rule " in row for row in rows)
    manifest = (workspace / "data" / "ingested" / "manifest.csv").read_text()
    assert "burned_in_text" not in manifest and "text_redacted" not in manifest


DATA_URI = re.compile(rb"data:[\w/+.-]+;base64,[A-Za-z0-9+/=]+")


def _searchable_bytes(path: Path) -> bytes:
    """File bytes; for torch ``.pt`` zips, the member names and pickles (not tensor blobs)."""
    if not zipfile.is_zipfile(path):
        # embedded images are base64: a 4-letter name turns up in ~1 MB of it by chance
        return DATA_URI.sub(b"", path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        kept = [n for n in names if not re.search(r"/data/\d+$", n)]
        return b"\n".join([*(n.encode() for n in names), *(zf.read(n) for n in kept)])


@pytest.mark.slow
def test_second_repro_is_a_noop(workspace: Path) -> None:
    out = _run(workspace, "dvc", "repro").stdout
    assert "Running stage" not in out


@pytest.mark.slow
def test_bad_label_csv_fails_and_changes_nothing(workspace: Path) -> None:
    good = (workspace / "labels" / "demo.csv").read_text()
    bad = workspace / "labels" / "bad_labels.csv"
    bad.write_text(good + "xray/NOBODY/none.dcm,1\n")
    results = workspace / "results" / "label_efficiency.json"
    before = results.read_bytes()
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["labels"]["path"] = "labels/bad_labels.csv"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = _run(workspace, "dvc", "repro", check=False)
        assert proc.returncode != 0
        n_rows = good.count("\n") + 1
        assert f"bad_labels.csv: row {n_rows}: 'path' matches no ingested image" in proc.stderr
        assert results.read_bytes() == before
    finally:
        params_file.write_text(original)
        bad.unlink()


@pytest.mark.slow
def test_budget_the_labels_cannot_fill_fails_before_training(workspace: Path) -> None:
    results = workspace / "results" / "label_efficiency.json"
    before = results.read_bytes()
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["finetune"]["budgets"] = [8, 500]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = _run(workspace, "dvc", "repro", check=False)
        assert proc.returncode != 0
        assert "finetune.budgets (seed 0): budget 500 exceeds the" in proc.stderr
        assert "Running stage 'finetune" not in proc.stdout
        assert results.read_bytes() == before
    finally:
        params_file.write_text(original)


@pytest.mark.slow
def test_bad_params_stop_with_one_line_and_change_nothing(workspace: Path) -> None:
    """A wrong type stops the first stage that reads it (finetune) before it trains; an
    unknown key in a section split tracks stops split: one line naming the key, and no
    result changes (DVC itself empties the outputs of the stage it runs, so the check that
    matters is that no later stage runs)."""
    results = workspace / "results" / "label_efficiency.json"
    before = results.read_bytes()
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    cases = (
        ("finetune", "steps", "4", "finetune.steps: must be a valid integer, got '4'"),
        (
            "split",
            "validaton",
            "oracle",
            "split.validaton: unknown key; did you mean 'validation'?",
        ),
    )
    try:
        for section, key, value, expected in cases:
            params = yaml.safe_load(original)
            params[section][key] = value
            params_file.write_text(yaml.safe_dump(params, sort_keys=False))
            proc = _run(workspace, "dvc", "repro", check=False)
            assert proc.returncode != 0
            assert f"error: params.yaml: {expected}\n" in proc.stderr
            assert "Traceback" not in proc.stderr
            assert "Running stage 'evaluate'" not in proc.stdout
            assert "labels to fit" not in proc.stdout  # no arm started training
            assert results.read_bytes() == before
    finally:
        params_file.write_text(original)


@pytest.mark.slow
def test_without_labels_the_encoder_still_trains(workspace: Path) -> None:
    """labels.path null: split says evaluation waits; fine-tuning stops with a clear line."""
    params_file = workspace / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["labels"]["path"] = None
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        dry = _run(workspace, "dvc", "repro", "--dry", "pretrain").stdout
        assert "Running stage" not in dry  # the encoder needs no label set
        proc = _run(workspace, "dvc", "repro", "split")
        assert "no label set (labels.path is null)" in proc.stdout
        proc = _run(workspace, "dvc", "repro", check=False)
        assert proc.returncode != 0
        assert "fine-tuning waits for a label set" in proc.stderr
    finally:
        params_file.write_text(original)
        _run(workspace, "dvc", "repro", "split")


@pytest.mark.slow
def test_a_new_label_set_reuses_the_encoder(workspace: Path) -> None:
    """``dvc exp run -S labels.path=...`` re-runs split and after, never ingest or pretrain."""
    encoder = workspace / "models" / "pretrain" / "encoder.pt"
    before = encoder.read_bytes()
    table = pd.read_csv(workspace / "labels" / "demo.csv", dtype=str)
    table = table.sample(frac=0.8, random_state=1).sort_values("path")  # another label set
    table.to_csv(workspace / "labels" / "second.csv", index=False, lineterminator="\n")
    _run(workspace, "git", "add", "-A")
    _run(workspace, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run")
    out = _run(workspace, "dvc", "exp", "run", "-S", "labels.path=labels/second.csv").stdout
    for stage in ("demo_data", "ingest", "pretrain"):
        assert f"Stage '{stage}' didn't change, skipping" in out
        assert f"Running stage '{stage}'" not in out
    assert "Running stage 'split'" in out and "Running stage 'evaluate'" in out
    assert encoder.read_bytes() == before
    records = json.loads((workspace / "results" / "label_efficiency.json").read_text())
    assert records and all(r["n_val_labels"] <= r["n_labels"] for r in records)


@pytest.mark.slow
def test_cross_fitting_counts_every_budget_label_once(workspace: Path, tmp_path: Path) -> None:
    """``split.cross_fit``: every label validates out of fold, the encoder is reused."""
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws, symlinks=True)
    encoder = ws / "models" / "pretrain" / "encoder.pt"
    before = encoder.read_bytes()
    out = _run(
        ws, "dvc", "exp", "run", "-S", "split.cross_fit=true",
        "-S", "split.budget_val_fraction=0.5", "-S", "finetune.seeds=[0]",
    ).stdout  # fmt: skip
    assert "Running stage 'pretrain'" not in out and encoder.read_bytes() == before
    records = json.loads((ws / "results" / "label_efficiency.json").read_text())
    assert records and all(r["n_val_labels"] == r["n_labels"] for r in records)
    runs = sorted((ws / "models" / "finetune").glob("*-0"))
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        scores = pd.read_csv(run / "scores.csv")
        val = scores[(scores["split"] == "val") & (scores["mode"] == scores["mode"].iloc[0])]
        assert len(val) == info["n_labels"] == info["n_val_labels"] == info["n_fit_labels"]
    assert runs


FENCE = re.compile(r"```bash\n(.*?)```", re.S)
#: README lines the fixture stands in for (``make demo``: the tiny config's ``dvc repro``)
#: or that would change the workspace's identity (a new pseudonymisation secret).
STANDS_IN = ("make ", "export MEDSSL_DEID_SECRET")


def readme_commands() -> list[str]:
    """Every command line in the README's bash blocks, comments stripped, as written."""
    lines = []
    for block in FENCE.findall((REPO / "README.md").read_text()):
        for line in block.splitlines():
            command = line.split("  #")[0].split(" # ")[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


@pytest.mark.slow
def test_every_readme_command_works_as_written(workspace: Path) -> None:
    """After the tiny `dvc repro` (make demo's work), each README command in one shell."""
    commands = readme_commands()
    assert "source .venv/bin/activate" in commands and "dvc repro" in commands
    assert any(c.startswith("dvc exp run -S labels.path=") for c in commands)
    venv = workspace / ".venv"
    if not venv.exists():
        venv.symlink_to(Path(sys.executable).parent.parent)  # the project's environment
        with (workspace / ".git" / "info" / "exclude").open("a") as exclude:
            exclude.write("/.venv\n")
    other = workspace / "labels" / "other.csv"
    table = pd.read_csv(workspace / "labels" / "demo.csv", dtype=str)
    table.sample(frac=0.9, random_state=2).sort_values("path").to_csv(other, index=False)
    _run(workspace, "git", "add", "-A")
    _run(workspace, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "readme")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MEDSSL_DEID_SECRET")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # a fresh shell: no venv on the PATH
    env["OMP_NUM_THREADS"] = "1"
    for command in commands:
        if command.startswith(STANDS_IN):
            continue
        script = f"set -e\nsource .venv/bin/activate\n{command}\n"
        proc = subprocess.run(["bash", "-c", script], cwd=workspace, env=env,
                              capture_output=True, text=True)  # fmt: skip
        tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert proc.returncode == 0, f"{command!r} failed:\n{tail}"
        assert "nvImageCodec" not in proc.stdout + proc.stderr, command
