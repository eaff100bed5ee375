"""The pretrain stage script: SIGKILL and restart, 2-process DDP, real data (tiny sizes)."""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from medssl.models.encoders import build_encoder
from medssl.ssl.simclr import nt_xent
from medssl.ssl.vicreg import vicreg_loss
from medssl.train import checkpoint as ckpt
from tests.conftest import REPO, SHARED_DATA

STEPS = 12  # 24 training images / batch 6 = 4 steps per epoch, 3 epochs


def stage_workspace(
    root: Path, ingested: Path, pretrain: dict[str, object], model: dict[str, object]
) -> Path:
    """params.yaml and reserve.csv (every fifth 2D image reserved) beside ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["pretrain"].update(pretrain)
    params["model"].update(model)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    manifest = pd.read_csv(ingested / "manifest.csv", dtype={"image_id": str})
    images = manifest[manifest["spatial_dims"] == 2].sort_values("image_id")
    reserve = pd.DataFrame({"image_id": images["image_id"], "patient_key": images["patient_key"]})
    reserve["part"] = ["pool" if i % 5 else "reserve" for i in range(len(reserve))]
    reserve.to_csv(root / "reserve.csv", index=False)
    (root / "weights").mkdir(exist_ok=True)
    return root


def stage_command(ws: Path, ingested: Path, run: str) -> list[str]:
    """The stage's command line, outputs under ``ws/run``."""
    return [
        sys.executable, str(REPO / "pipelines" / "pretrain.py"),
        "--ingested", str(ingested), "--reserve", str(ws / "reserve.csv"),
        "--weights", str(ws / "weights"), "--out", str(ws / run / "encoder"),
        "--checkpoints", str(ws / run / "ckpt"), "--cache-dir", str(ws / run / "cache"),
        "--live", str(ws / run / "live"), "--params", str(ws / "params.yaml"),
    ]  # fmt: skip


def stage_env() -> dict[str, str]:
    """One thread per process: bit-identical reruns need the same thread count."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_stage(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=stage_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_stage_here(cmd: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage's ``main()`` in this process (saves an interpreter start-up), one thread."""
    monkeypatch.setattr(sys, "argv", cmd[1:])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runpy.run_path(cmd[1], run_name="__main__")
    finally:
        torch.set_num_threads(threads)


def _encoder(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "encoder" / "encoder.pt", weights_only=True)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_restart_is_bit_identical(
    tmp_path: Path, ingested: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ingested[0]
    params = {"epochs": 3, "batch_size": 6, "checkpoint_every": 5, "workers": 1}
    ws = stage_workspace(tmp_path, data, params, {"image_size": 32, "encoder": "resnet10"})
    n_train = len(pd.read_csv(ws / "reserve.csv").query("part == 'pool'"))
    assert (n_train // 6) * 3 == STEPS
    run_stage_here(stage_command(ws, data, "reference"), monkeypatch)

    killed = subprocess.Popen(
        stage_command(ws, data, "run"), env=stage_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    last = ws / "run" / "ckpt" / ckpt.LAST
    deadline = time.monotonic() + 240
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    step = ckpt.load(last)["global_step"]
    assert 0 < step < STEPS and step % 4 != 0  # mid-epoch
    assert not (ws / "run" / "encoder").exists()

    run_stage_here(stage_command(ws, data, "run"), monkeypatch)
    reference, resumed = _encoder(ws / "reference"), _encoder(ws / "run")
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    meta = yaml.safe_load((ws / "run" / "encoder" / "encoder.json").read_text())
    assert meta["resumed_from_step"] == step and meta["steps"] == STEPS
    assert meta["determinism"]["torch_num_threads"] == 1
    loss = pd.read_csv(ws / "run" / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert loss["step"].tolist() == list(range(1, STEPS + 1))  # no gap, no duplicate


@pytest.mark.slow
def test_two_processes_through_torchrun(
    tmp_path: Path, ingested: tuple[Path, dict[str, int]]
) -> None:
    """nproc 2: the script re-executes itself under torchrun (gloo); rank 0 alone writes."""
    data = ingested[0]
    params = {"epochs": 2, "batch_size": 8, "nproc": 2, "workers": 0}
    ws = stage_workspace(tmp_path, data, params, {"image_size": 32, "encoder": "resnet10"})
    proc = run_stage(stage_command(ws, data, "ddp"))
    assert proc.stdout.count("pretraining simclr on 24 pool images") == 1
    meta = yaml.safe_load((ws / "ddp" / "encoder" / "encoder.json").read_text())
    assert meta["determinism"]["world_size"] == 2 and meta["steps"] == 2 * (24 // 2 // 4)
    encoder, _ = build_encoder("resnet10", 2, 1, False)
    encoder.load_state_dict(_encoder(ws / "ddp"))
    loss = pd.read_csv(ws / "ddp" / "live" / "plots" / "metrics" / "train" / "loss.tsv", sep="\t")
    assert loss["step"].tolist() == list(range(1, meta["steps"] + 1))  # rank 0 only logs
    assert sorted(p.name for p in (ws / "ddp" / "ckpt").iterdir()) == [ckpt.FINAL]


GATHER_SCRIPT = """
import sys, torch, torch.distributed as dist
from medssl.ssl.simclr import nt_xent
from medssl.ssl.vicreg import vicreg_loss
from medssl.train.distributed import gather_with_grad, teardown
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
z = torch.randn(8, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
local = z[rank * 4 : (rank + 1) * 4].clone().requires_grad_()
g = gather_with_grad(local)
loss = nt_xent(g[:, 0], g[:, 1], 0.2) + vicreg_loss(g[:, 0], g[:, 1])
loss.backward()
torch.save(local.grad, sys.argv[1] + f"/grad{rank}.pt")
teardown()
"""


@pytest.mark.slow
def test_gathered_losses_give_the_global_batch_gradient(tmp_path: Path) -> None:
    """Under DDP (gradients averaged over ranks) the gathered loss has the 1-process gradient."""
    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]  # fmt: skip
    run_stage(cmd)
    z = torch.randn(8, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z.requires_grad_()
    (nt_xent(z[:, 0], z[:, 1], 0.2) + vicreg_loss(z[:, 0], z[:, 1])).backward()
    assert z.grad is not None
    per_rank = [torch.load(tmp_path / f"grad{r}.pt", weights_only=True) for r in range(2)]
    averaged = torch.cat(per_rank) / 2  # DDP's all-reduce mean over the 2 ranks
    assert torch.allclose(averaged, z.grad, atol=1e-12)


def _ingest_real(tmp_path: Path, files: list[Path]) -> Path:
    """Copy a few real files into a scratch export and ingest them (demo secret)."""
    from medssl.ingest import ingest
    from medssl.io.pseudonym import DEMO_SECRET

    export = tmp_path / "export"
    export.mkdir()
    for f in files:
        shutil.copy(f, export / f.name)
    out = tmp_path / "ingested"
    ingest([export], out, secret=DEMO_SECRET, workers=1)
    return out


@pytest.mark.slow
@pytest.mark.realdata
def test_real_chest_radiographs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four real 640 px Hannover chest radiographs (PNG): ingest, then a few SimCLR steps."""
    folder = SHARED_DATA / "hannover_cxr" / "png"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    data = _ingest_real(tmp_path, sorted(folder.glob("*.png"))[:4])
    params = {"epochs": 2, "batch_size": 4, "workers": 0}
    ws = stage_workspace(tmp_path / "ws", data, params, {"image_size": 64, "encoder": "resnet10"})
    reserve = pd.read_csv(ws / "reserve.csv").assign(part="pool")
    reserve.to_csv(ws / "reserve.csv", index=False)
    run_stage_here(stage_command(ws, data, "cxr"), monkeypatch)
    meta = yaml.safe_load((ws / "cxr" / "encoder" / "encoder.json").read_text())
    assert meta["n_images"] == 4 and meta["steps"] == 2


@pytest.mark.slow
@pytest.mark.realdata
def test_real_ct_volumes_3d_with_hu_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real CT volumes (NIfTI, HU): 3D SimCLR with random lung/soft-tissue/bone windows."""
    folder = SHARED_DATA / "volumes"
    if not folder.is_dir():
        pytest.skip(f"{folder} absent")
    data = _ingest_real(tmp_path, [folder / "example_ct.nii.gz", folder / "example_ct_sm.nii.gz"])
    params = {"epochs": 2, "batch_size": 2, "workers": 0,
              "views": {"min_crop": 0.6, "flip": False, "noise_std": 0.03,
                        "hu_windows": ["lung", "soft_tissue", "bone"]}}  # fmt: skip
    model = {"image_size": 32, "encoder": "resnet10", "spatial_dims": 3, "intensity": "ct_full"}
    ws = stage_workspace(tmp_path / "ws", data, params, model)
    manifest = pd.read_csv(data / "manifest.csv")
    volumes = manifest[manifest["spatial_dims"] == 3]
    pd.DataFrame({"image_id": volumes["image_id"], "patient_key": volumes["patient_key"],
                  "part": "pool"}).to_csv(ws / "reserve.csv", index=False)  # fmt: skip
    run_stage_here(stage_command(ws, data, "ct"), monkeypatch)
    meta = yaml.safe_load((ws / "ct" / "encoder" / "encoder.json").read_text())
    assert meta["n_images"] == 2 and meta["spatial_dims"] == 3 and meta["steps"] == 2
    encoder, _ = build_encoder("resnet10", 3, 1, False)
    encoder.load_state_dict(_encoder(ws / "ct"))


@pytest.mark.slow
def test_model_init_continues_an_earlier_encoder_or_fails_clearly(
    tmp_path: Path, ingested: tuple[Path, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """model.init under weights/: continued pretraining records the file's hash; a file for
    another encoder stops the stage with one line naming the file and the mismatch."""
    data = ingested[0]
    params = {"epochs": 1, "batch_size": 6, "workers": 0}
    model = {"image_size": 32, "encoder": "resnet10"}
    ws = stage_workspace(tmp_path, data, params, model)
    run_stage_here(stage_command(ws, data, "first"), monkeypatch)
    shutil.copy(ws / "first" / "encoder" / "encoder.pt", ws / "weights" / "earlier.pt")
    config = yaml.safe_load((ws / "params.yaml").read_text())
    config["model"]["init"] = str(ws / "weights" / "earlier.pt")
    (ws / "params.yaml").write_text(yaml.safe_dump(config))
    run_stage_here(stage_command(ws, data, "continued"), monkeypatch)
    meta = yaml.safe_load((ws / "continued" / "encoder" / "encoder.json").read_text())
    from medssl.models.init import file_sha256

    assert meta["init_sha256"] == file_sha256(ws / "weights" / "earlier.pt")
    torch.save(build_encoder("resnet18", 2, 1, False)[0].state_dict(), ws / "weights" / "r18.pt")
    config["model"]["init"] = str(ws / "weights" / "r18.pt")
    (ws / "params.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(stage_command(ws, data, "bad"), env=stage_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: model.init: ") and "does not fit model.encoder=resnet10" in last
    config["model"]["init"] = str(tmp_path / "elsewhere.pt")
    (ws / "params.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(stage_command(ws, data, "bad"), env=stage_env(), capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert "params.yaml: model.init: must name a file inside" in proc.stderr
