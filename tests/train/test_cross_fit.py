"""Cross-fitted modes: out-of-fold validation scores, choices on them, refit on the budget."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medssl.train.arms import run_arm
from medssl.train.cross_fit import Folded, cross_fit_arm, pooled_curve
from medssl.train.finetune import TrainResult, build_classifier, predict
from medssl.train.probe import cross_fit_probe
from tests.train.test_arms import CFG as ARM_CFG
from tests.train.test_arms import labelled

CFG = dataclasses.replace(ARM_CFG, train=dataclasses.replace(ARM_CFG.train, steps=6))

pytestmark = pytest.mark.usefixtures("one_thread")


def folded(seed: int = 0, n: int = 24, n_test: int = 10) -> Folded:
    rng = np.random.default_rng(seed)

    def images(y: np.ndarray) -> torch.Tensor:
        x = rng.normal(0.3, 0.05, size=(len(y), 1, 16, 16))
        x[y == 1, :, 3:9, 3:9] += 0.6
        return torch.tensor(x, dtype=torch.float32)

    y = np.array([0, 1] * (n // 2))
    folds = (np.arange(n) // 2) % 4  # each fold holds both classes
    return Folded(images(y), y, folds, images(np.array([0, 1] * (n_test // 2))))


def quiet(_: str) -> None:
    return None


def test_scores_are_out_of_fold_then_test_and_choices_use_them() -> None:
    data = folded()
    out = cross_fit_arm("pixels", ["logistic", "knn"], data, CFG, seed=0, log=quiet)
    n = len(data.y)
    for mode in out.values():
        assert mode.prob.shape == (n + 10,)
        assert mode.info["val_auroc"] == pytest.approx(roc_auc_score(data.y, mode.raw[:n]))
    from medssl.train.pixels import pixel_features

    feats = pixel_features(data.x, CFG.pixel_size)
    probe, oof = cross_fit_probe(feats, data.y, data.folds, CFG.probe_c)
    np.testing.assert_allclose(out["logistic"].prob[:n], oof)
    test_feats = pixel_features(data.x_test, CFG.pixel_size)
    np.testing.assert_allclose(out["logistic"].prob[n:], probe.predict(test_feats))
    assert out["knn"].info["bank_size"] == n // 2  # test scored against every budget normal


def test_full_mode_refits_on_the_whole_budget_for_the_chosen_length() -> None:
    data = folded()
    init = build_classifier("resnet18", 2, False, None, seed=5).encoder.state_dict()
    cfg = dataclasses.replace(CFG, lp_ft=True)
    out = cross_fit_arm("ssl", ["linear", "full"], data, cfg, seed=0, init=init, log=quiet)
    full = out["full"].info
    steps = [s for s, _ in full["history"]]
    assert steps == [0, 2, 4, 6] and len(full["fold_best_steps"]) == 4
    best = max(full["history"], key=lambda c: (c[1], -c[0]))
    assert (full["best_step"], full["val_auroc"]) == tuple(best)
    state = out["full"].state
    assert state is not None
    model = build_classifier("resnet18", 2, False, None, seed=0)
    model.load_state_dict(state)
    n = len(data.y)
    np.testing.assert_allclose(out["full"].prob[n:], predict(model, data.x_test), atol=1e-6)
    if full["best_step"] == 0:  # LP-FT at step 0 is the refitted linear probe
        np.testing.assert_allclose(out["full"].prob[n:], out["linear"].prob[n:], atol=1e-4)


def test_pooled_curve_keeps_an_early_stopped_fold_at_its_last_check() -> None:
    y = np.array([0, 1, 0, 1])
    masks = [np.array([True, True, False, False]), np.array([False, False, True, True])]
    model = build_classifier("resnet18", 2, False, None)
    a = TrainResult(model, 0, 1.0, predictions={0: np.array([0.2, 0.8]), 2: np.array([0.9, 0.1])})
    b = TrainResult(model, 0, 1.0, predictions={0: np.array([0.6, 0.7])})
    curve, oof = pooled_curve([a, b], masks, y)
    assert [s for s, _ in curve] == [0, 2]
    np.testing.assert_allclose(oof[2], [0.9, 0.1, 0.6, 0.7])
    assert curve[0][1] == pytest.approx(roc_auc_score(y, [0.2, 0.8, 0.6, 0.7]))


@pytest.mark.parametrize("protocol", ["held-out", "cross-fitted"])
def test_feature_flips_change_the_probe_not_full_fine_tuning(protocol: str) -> None:
    """LP-FT's probe is fitted on single images, as full fine-tuning then sees them."""
    runner, data = (run_arm, labelled()) if protocol == "held-out" else (cross_fit_arm, folded())
    init = build_classifier("resnet18", 2, False, None, seed=5).encoder.state_dict()
    out = {
        flips: runner(
            "ssl",
            ["linear", "full"],
            data,  # type: ignore[arg-type]
            dataclasses.replace(CFG, lp_ft=True, feature_flips=flips),
            seed=0,
            init=init,
            log=quiet,
        )
        for flips in (False, True)
    }
    np.testing.assert_array_equal(out[True]["full"].prob, out[False]["full"].prob)
    assert out[True]["full"].info["history"] == out[False]["full"].info["history"]
    assert not np.allclose(out[True]["linear"].prob, out[False]["linear"].prob)
