"""Full fine-tuning: seeded init, best-checkpoint early stopping, frozen-feature helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medssl.data.transforms import ssl_views
from medssl.train import finetune
from medssl.train.finetune import (
    TrainConfig,
    TrainResult,
    _batches,
    build_classifier,
    embed,
    predict,
    train_classifier,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def blobs(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """``(n, 1, size, size)`` noise images; abnormal ones (label 1) carry a bright square."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0.3, 0.05, size=(n, 1, size, size))
    x[y == 1, :, 4:10, 4:10] += 0.6
    return torch.tensor(x, dtype=torch.float32), y


def config(**kw: float) -> TrainConfig:
    base = dict(
        steps=12,
        batch_size=8,
        lr=3e-3,
        encoder_lr_scale=1.0,
        weight_decay=0.0,
        eval_every=4,
        patience=0,
    )
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_build_classifier_is_seeded_and_loads_init() -> None:
    a = build_classifier("resnet18", 2, False, None, seed=1).state_dict()
    b = build_classifier("resnet18", 2, False, None, seed=1).state_dict()
    c = build_classifier("resnet18", 2, False, None, seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["encoder.conv1.weight"], c["encoder.conv1.weight"])
    enc = {k.removeprefix("encoder."): v for k, v in c.items() if k.startswith("encoder.")}
    d = build_classifier("resnet18", 2, False, enc, seed=1).state_dict()
    assert torch.equal(d["encoder.conv1.weight"], c["encoder.conv1.weight"])


def test_batches_cycle_full_permutations() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = _batches(10, 3, 7, gen)
    assert len(batches) == 7 and all(len(b) == 3 for b in batches)
    first_epoch = torch.cat(batches[:3])
    assert len(set(first_epoch.tolist())) == 9  # 3 full batches, no repeats inside an epoch


@pytest.fixture(scope="module")
def trained() -> list[tuple[TrainResult, np.ndarray, np.ndarray]]:
    """Two identical seeded runs: ``(result, val images, val labels)`` each."""
    torch.set_num_threads(1)
    x, y = blobs(24, 0)
    xv, yv = blobs(16, 1)
    out = []
    for _ in range(2):
        model = build_classifier("resnet18", 2, False, None, seed=3)
        result = train_classifier(model, x, torch.tensor(y), xv, yv, config(steps=8), seed=3)
        out.append((result, predict(result.model, xv), yv))
    return out


def test_training_keeps_the_best_validation_checkpoint(
    trained: list[tuple[TrainResult, np.ndarray, np.ndarray]],
) -> None:
    result, probs, yv = trained[0]
    steps = [s for s, _ in result.history]
    assert steps == [0, 4, 8]
    assert result.val_auroc == max(v for _, v in result.history)
    assert result.best_step in steps
    assert roc_auc_score(yv, probs) == pytest.approx(result.val_auroc)
    assert result.val_auroc > 0.9  # the bright square is easy to learn


def test_training_is_deterministic(
    trained: list[tuple[TrainResult, np.ndarray, np.ndarray]],
) -> None:
    np.testing.assert_array_equal(trained[0][1], trained[1][1])
    assert trained[0][0].history == trained[1][0].history


def test_patience_stops_at_the_exact_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Early stopping on a constructed validation curve, checked every 2 steps, patience 2.

    Rule: a check improves only when strictly above the best so far (which resets the count
    of stale checks); the run stops at the check where the count reaches the patience.
    Curve at steps 0, 2, 4, ...: 0.50, 0.60, 0.55, 0.70, 0.65, 0.70, 0.99, ...
        step 0: 0.50 best (the untrained model)
        step 2: 0.60 best, stale 0
        step 4: 0.55 stale 1
        step 6: 0.70 best, stale 0 (reset; without it the run would stop at step 8)
        step 8: 0.65 stale 1
        step 10: 0.70 tie, not an improvement: stale 2 = patience, stop
    So the run stops after step 10 of 40, keeps the step-6 model, never sees 0.99.
    """
    curve = iter([0.50, 0.60, 0.55, 0.70, 0.65, 0.70, 0.99, 0.99])
    seen: list[dict[str, torch.Tensor]] = []

    def scripted_auroc(
        model: torch.nn.Module, images: torch.Tensor, labels: np.ndarray
    ) -> tuple[float, np.ndarray]:
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(curve), np.zeros(len(labels))

    monkeypatch.setattr(finetune, "_val_check", scripted_auroc)
    x, y = blobs(16, 0)
    xv, yv = blobs(8, 1)
    model = build_classifier("resnet18", 2, False, None, seed=0)
    cfg = config(steps=40, patience=2, eval_every=2)
    result = train_classifier(model, x, torch.tensor(y), xv, yv, cfg, seed=0)
    assert result.history == [(0, 0.50), (2, 0.60), (4, 0.55), (6, 0.70), (8, 0.65), (10, 0.70)]
    assert (result.best_step, result.val_auroc) == (6, 0.70)
    assert len(seen) == 6  # no check after step 10
    kept = result.model.state_dict()
    assert all(torch.equal(kept[k], seen[3][k]) for k in kept)  # the model checked at step 6
    assert not torch.equal(kept["head.weight"], seen[5]["head.weight"])  # not the last one


def test_predict_and_embed_shapes() -> None:
    x, _ = blobs(5, 0)
    model = build_classifier("resnet18", 2, False, None, seed=0)
    p = predict(model, x, batch_size=2)
    assert p.shape == (5,) and p.dtype == np.float64 and ((p >= 0) & (p <= 1)).all()
    f = embed(model.encoder, x, batch_size=2)
    assert f.shape == (5, 512)
    np.testing.assert_allclose(f, embed(model.encoder, x, batch_size=5), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field", ["steps", "batch_size", "eval_every"])
def test_config_rejects_bad_values(field: str) -> None:
    with pytest.raises(ValueError, match=f"finetune.{field}"):
        config(**{field: 0})
    with pytest.raises(ValueError, match="patience"):
        config(patience=-1)


def test_too_few_labels() -> None:
    x, y = blobs(4, 0)
    model = build_classifier("resnet18", 2, False, None)
    with pytest.raises(ValueError, match="at least 2"):
        train_classifier(model, x[:1], torch.tensor(y[:1]), x, y, config(), seed=0)


def test_a_refit_of_n_steps_is_the_first_n_steps_of_training() -> None:
    """``train_steps`` (the cross-fitted refit) replays ``train_classifier``'s batches and views."""
    from medssl.data.transforms import ssl_views
    from medssl.train.finetune import train_steps

    x, y = blobs(24, 0)
    xv, yv = blobs(10, 1)
    views = ssl_views(16, 2, min_crop=0.6, noise_std=0.02)
    result = train_classifier(
        build_classifier("resnet18", 2, False, None, seed=0), x, torch.tensor(y), xv, yv,
        config(), seed=3, augment=views, keep_predictions=True,
    )  # fmt: skip
    assert sorted(result.predictions) == [0, 4, 8, 12]
    for steps in (0, 8):
        model = train_steps(
            build_classifier("resnet18", 2, False, None, seed=0), x, torch.tensor(y),
            config(), steps=steps, seed=3, augment=views,
        )  # fmt: skip
        np.testing.assert_allclose(predict(model, xv), result.predictions[steps], atol=1e-6)


def test_bf16_fine_tuning_is_deterministic_and_close_to_fp32() -> None:
    x, y = blobs(24, 0)
    xv, yv = blobs(16, 1)
    runs: dict[str, list[np.ndarray]] = {"fp32": [], "bf16": []}
    for precision in ["fp32", "bf16", "bf16"]:
        model = build_classifier("resnet18", 2, False, None, seed=3)
        views = ssl_views(16, 2, min_crop=0.8, noise_std=0.01)
        with finetune.autocast(precision):
            result = train_classifier(
                model, x, torch.tensor(y), xv, yv, config(steps=8), seed=3, augment=views
            )
            features = embed(result.model.encoder, xv)
            runs[precision].append(predict(result.model, xv))
        assert features.dtype == np.float64 and np.isfinite(features).all()
    bf16, again = runs["bf16"]
    np.testing.assert_array_equal(bf16, again)
    assert bf16.dtype == np.float64 and not np.array_equal(bf16, runs["fp32"][0])
    np.testing.assert_allclose(bf16, runs["fp32"][0], atol=0.1)
    assert roc_auc_score(yv, bf16) > 0.9


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="finetune.precision must be bf16 or fp32, got 'fp16'"):
        finetune.autocast("fp16")
