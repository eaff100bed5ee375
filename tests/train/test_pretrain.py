"""Pretraining engine in-process at a tiny size: reproducibility, resume, methods, probe."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from medssl.models.encoders import build_encoder
from medssl.train import checkpoint as ckpt
from medssl.train import distributed as dist
from medssl.train.pretrain import (
    Preempted,
    PretrainConfig,
    PretrainResult,
    ProbeSet,
    RunOptions,
    pretrain,
    warmup_cosine,
)

TINY = PretrainConfig(
    encoder="resnet10", image_size=32, epochs=2, batch_size=4, proj_dim=16, lr=1e-3
)
N = 12  # 3 steps per epoch, 6 in all


pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n: int = N, size: int = 32, dims: int = 2) -> torch.Tensor:
    """Blobs at random places: images with structure, in [0, 1]."""
    g = torch.Generator().manual_seed(42)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, size)] * dims, indexing="ij"))
    centres = torch.rand(n, dims, generator=g) * 1.2 - 0.6
    d2 = ((grid[None] - centres.view(n, dims, *[1] * dims)) ** 2).sum(1)
    return torch.exp(-d2 / 0.1).unsqueeze(1)


def _gratings(n: int, size: int = 32) -> torch.Tensor:
    """Sinusoidal gratings in [0, 1]: 8 orientations x ``n // 8`` frequencies, one per image.

    Orientation and frequency survive the crops of the SimCLR views, so every image can be
    told from the others: instance discrimination is learnable in a few steps.
    """
    y, x = torch.meshgrid(*[torch.linspace(-1, 1, size)] * 2, indexing="ij")
    out = []
    for i in range(n):
        theta = math.pi * (i % 8) / 8
        cycles = 2.0 + 2.0 * (i // 8)
        out.append(
            0.5 + 0.5 * torch.sin(math.pi * cycles * (x * math.cos(theta) + y * math.sin(theta)))
        )
    return torch.stack(out).unsqueeze(1)


def _ids(n: int = N) -> list[str]:
    return [f"image-{i:03d}" for i in range(n)]


def _run(tmp: Path, config: PretrainConfig = TINY, **kw: object) -> PretrainResult:
    options = RunOptions(checkpoint_dir=tmp, checkpoint_every=4, knn_every=0)
    info = dist.setup("cpu")
    return pretrain(_images(), _ids(), config, options, info, **kw)  # type: ignore[arg-type]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PretrainResult]:
    """An uninterrupted run of TINY, shared by the reproducibility tests."""
    folder = tmp_path_factory.mktemp("reference")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return folder, _run(folder)
    finally:
        torch.set_num_threads(n)


def test_warmup_cosine_reference() -> None:
    assert [warmup_cosine(s, 2, 10) for s in (0, 1)] == [0.5, 1.0]
    assert warmup_cosine(2, 2, 10) == 1.0
    assert warmup_cosine(6, 2, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert warmup_cosine(10, 2, 10) == pytest.approx(0.0)


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)  # noqa: NPY002
    state = ckpt.capture_rng(torch.device("cpu"))
    expected = (torch.rand(3), np.random.rand(3), np.random.randn())  # noqa: NPY002
    ckpt.save_atomic({"format": ckpt.FORMAT, "rng": state}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)
    torch.rand(5)
    ckpt.restore_rng(loaded["rng"], torch.device("cpu"))
    got = (torch.rand(3), np.random.rand(3), np.random.randn())  # noqa: NPY002
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


@pytest.mark.slow
def test_simclr_loss_drops_on_structured_images(tmp_path: Path) -> None:
    """SimCLR learns: the last epoch's mean loss is well below the first epoch's.

    32 gratings, batch 16 (2 steps an epoch), 8 epochs. The first epoch's NT-Xent is near
    chance, ln(2 * 16 - 1) = 3.43 (3.1-3.6 over seeds 0-9); the last is 1.4-1.9. The ratio
    last / first was 0.38-0.55 over those seeds, so 0.75 leaves a wide margin.
    """
    n, batch = 32, 16
    config = dataclasses.replace(TINY, epochs=8, batch_size=batch, lr=1e-3, min_crop=0.7, seed=0)
    losses: list[float] = []
    options = RunOptions(checkpoint_dir=tmp_path, checkpoint_every=100, knn_every=0)
    result = pretrain(_gratings(n), _ids(n), config, options, dist.setup("cpu"),
                      on_metrics=lambda s, m: losses.append(m["train/loss"]))  # fmt: skip
    steps_per_epoch = n // batch
    assert result.steps == len(losses) == 8 * steps_per_epoch
    first = sum(losses[:steps_per_epoch]) / steps_per_epoch
    last = sum(losses[-steps_per_epoch:]) / steps_per_epoch
    assert last < 0.75 * first


@pytest.mark.slow
def test_two_runs_are_bit_identical(tmp_path: Path, reference: tuple[Path, PretrainResult]) -> None:
    a = reference[1].encoder
    b = _run(tmp_path).encoder
    assert _same(a, b)
    fa = torch.load(reference[0] / ckpt.FINAL, weights_only=True)
    fb = torch.load(tmp_path / ckpt.FINAL, weights_only=True)
    assert _same(fa["model"], fb["model"]) and fa["global_step"] == 6
    assert _same(fa["optimizer"]["state"][0], fb["optimizer"]["state"][0])
    assert not (tmp_path / ckpt.LAST).exists()
    untrained, _ = build_encoder("resnet10", 2, 1, False)
    assert not _same(a, untrained.state_dict())
    untrained.load_state_dict(a)


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_restart_ends_identical(
    tmp_path: Path, reference: tuple[Path, PretrainResult]
) -> None:
    def term_at_step_2(step: int, metrics: dict[str, float]) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted):
        _run(tmp_path / "run", on_metrics=term_at_step_2)
    saved = ckpt.load(tmp_path / "run" / ckpt.LAST)
    assert (saved["epoch"], saved["step_in_epoch"], saved["global_step"]) == (0, 2, 2)
    replayed: list[int] = []
    resumed = _run(tmp_path / "run", on_metrics=lambda s, m: replayed.append(s))
    assert resumed.resumed_from_step == 2
    assert _same(resumed.encoder, reference[1].encoder)
    assert replayed == list(range(1, 7))  # history replayed once, then steps 3..6


@pytest.mark.slow
def test_a_checkpoint_of_another_configuration_is_not_resumed(tmp_path: Path) -> None:
    _run(tmp_path, dataclasses.replace(TINY, epochs=1))
    (tmp_path / ckpt.FINAL).rename(tmp_path / ckpt.LAST)  # pretend it was interrupted
    assert _run(tmp_path).resumed_from_step is None


@pytest.mark.slow
def test_vicreg_logs_curves_and_a_knn_probe(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, method="vicreg")
    images = _images()
    labels = torch.tensor([0, 1] * (N // 2))
    probe = ProbeSet(images[:8], labels[:8], images[8:], labels[8:])
    rows: dict[int, dict[str, float]] = {}
    options = RunOptions(checkpoint_dir=tmp_path, knn_every=1)
    result = pretrain(images, _ids(), config, options, dist.setup("cpu"), probe,
                      on_metrics=lambda s, m: rows.setdefault(s, {}).update(m))  # fmt: skip
    assert sorted(rows) == list(range(1, 7))
    assert {"train/loss", "train/lr", "train/embedding_std"} <= set(rows[1])
    assert {"val/knn_auroc", "val/knn_acc"} <= set(rows[3]) and "val/knn_acc" in rows[6]
    assert "val/knn_acc" not in rows[2]
    assert 0.0 < rows[6]["train/embedding_std"] < 1.0
    assert result.determinism["seed"] == 0 and result.determinism["world_size"] == 1
    encoder, _ = build_encoder("resnet10", 2, 1, False)
    encoder.load_state_dict(result.encoder)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("einops") is None, reason="ViT needs einops")
@pytest.mark.parametrize("dims", [2, 3])
def test_mae_pretrains_a_vit_for_finetuning(tmp_path: Path, dims: int) -> None:
    config = dataclasses.replace(
        TINY, method="mae", encoder="vit_tiny", small_input=True, image_size=16,
        spatial_dims=dims, epochs=1,
    )  # fmt: skip
    options = RunOptions(checkpoint_dir=tmp_path, knn_every=0)
    result = pretrain(_images(N, 16, dims), _ids(), config, options, dist.setup("cpu"))
    encoder, _ = build_encoder("vit_tiny", dims, 1, True)
    encoder.load_state_dict(result.encoder)


def test_config_errors_name_the_param() -> None:
    with pytest.raises(ValueError, match="pretrain.method"):
        PretrainConfig(method="moco")
    with pytest.raises(ValueError, match="model.encoder"):
        PretrainConfig(method="mae", encoder="resnet18")
    with pytest.raises(ValueError, match="batch"):
        _run(Path("unused"), dataclasses.replace(TINY, method="simclr", batch_size=1))


def test_byol_trains_and_reruns_bit_identically(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, method="byol", byol_momentum=0.9)
    full = _run(tmp_path / "full", config)
    assert full.steps == 6
    again = _run(tmp_path / "again", config)
    assert _same(again.encoder, full.encoder)
    assert not _same(full.encoder, _run(tmp_path / "simclr", TINY).encoder)


def test_continued_pretraining_starts_from_the_given_weights(
    tmp_path: Path, reference: tuple[Path, PretrainResult]
) -> None:
    """model.init: an earlier encoder continues; its hash changes the resume fingerprint."""
    start = reference[1].encoder
    config = dataclasses.replace(TINY, epochs=1, init_sha256="a" * 64)
    zero_lr = dataclasses.replace(config, lr=1e-12)
    kept = _run(tmp_path / "kept", zero_lr, init=start)
    assert all(torch.allclose(kept.encoder[k].float(), start[k].float(), atol=1e-5)
               for k in start if start[k].is_floating_point() and "running" not in k)  # fmt: skip
    moved = _run(tmp_path / "moved", config, init=start)
    fresh = _run(tmp_path / "fresh", dataclasses.replace(TINY, epochs=1))
    assert not _same(moved.encoder, fresh.encoder)
    bad, _ = build_encoder("resnet18", 2, 1, False)
    with pytest.raises(RuntimeError, match="size mismatch|Missing key|Unexpected key"):
        _run(tmp_path / "bad", config, init=bad.state_dict())


@pytest.mark.slow
def test_batch_views_resume_bit_identically_in_bf16(tmp_path: Path) -> None:
    """The default CPU mode (bf16 autocast, whole-batch views): interrupted by SIGTERM and
    resumed, a run ends with the weights of an uninterrupted one; the views differ from the
    per-image engine's."""
    config = dataclasses.replace(TINY, views_engine="batch", precision="bf16")
    full = _run(tmp_path / "full", config)

    def term_at_step_4(step: int, metrics: dict[str, float]) -> None:
        if step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted):
        _run(tmp_path / "run", config, on_metrics=term_at_step_4)
    resumed = _run(tmp_path / "run", config)
    assert resumed.resumed_from_step == 4 and _same(resumed.encoder, full.encoder)
    sample = _run(tmp_path / "sample", dataclasses.replace(config, views_engine="sample"))
    assert not _same(sample.encoder, full.encoder)


def test_batch_views_need_2d_images_without_windows() -> None:
    with pytest.raises(ValueError, match="pretrain.views.engine 'batch'"):
        dataclasses.replace(TINY, views_engine="batch", spatial_dims=3)
    with pytest.raises(ValueError, match="resolve 'auto'"):
        dataclasses.replace(TINY, views_engine="auto")
