"""Every mode of every arm runs on one budget and scores the val + test images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from medssl.train.arms import ArmConfig, Labelled, check_modes, run_arm
from medssl.train.finetune import TrainConfig, build_classifier

CFG = ArmConfig(
    encoder="resnet18",
    spatial_dims=2,
    small_input=False,
    train=TrainConfig(
        steps=4,
        batch_size=8,
        lr=1e-3,
        encoder_lr_scale=0.1,
        weight_decay=0.0,
        eval_every=2,
        patience=0,
    ),  # fmt: skip
    probe_c=(0.1, 1.0),
    knn_k=3,
    knn_bank=0,
    pixel_size=8,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def labelled(seed: int = 0) -> Labelled:
    rng = np.random.default_rng(seed)

    def images(y: np.ndarray) -> torch.Tensor:
        x = rng.normal(0.3, 0.05, size=(len(y), 1, 16, 16))
        x[y == 1, :, 3:9, 3:9] += 0.6
        return torch.tensor(x, dtype=torch.float32)

    y_train = np.array([0, 1] * 6)
    y_scored = np.array([0, 1] * 10)
    return Labelled(
        x_train=images(y_train),
        y_train=y_train,
        x_scored=images(y_scored),
        y_scored=y_scored,
        is_val=np.arange(20) < 10,
    )


def test_pixels_arm_runs_both_modes() -> None:
    data = labelled()
    out = run_arm("pixels", ["logistic", "knn"], data, CFG, seed=0, log=lambda _: None)
    assert set(out) == {"logistic", "knn"}
    for mode in out.values():
        assert mode.prob.shape == (20,) and ((mode.prob >= 0) & (mode.prob <= 1)).all()
        assert roc_auc_score(data.y_scored[~data.is_val], mode.prob[~data.is_val]) > 0.9
    knn = out["knn"]
    assert knn.info["bank_size"] == 6  # the normal training images only
    # Platt scaling is increasing: same ranking as the raw distance
    order = np.argsort(knn.raw, kind="stable")
    assert (np.diff(knn.prob[order]) >= 0).all()


def test_ssl_arm_runs_all_modes_and_keeps_full_weights() -> None:
    data = labelled()
    init = build_classifier("resnet18", 2, False, None, seed=5).encoder.state_dict()
    out = run_arm(
        "ssl", ["linear", "full", "knn"], data, CFG, seed=0, init=init, log=lambda _: None
    )
    assert set(out) == {"linear", "full", "knn"}
    assert out["full"].state is not None and "head.weight" in out["full"].state
    assert out["full"].info["encoder_lr_scale"] == 0.1
    assert 0.0 <= out["linear"].info["val_auroc"] <= 1.0


def test_scratch_full_trains_the_encoder_at_full_rate() -> None:
    out = run_arm("scratch", ["full"], labelled(), CFG, seed=0, log=lambda _: None)
    assert out["full"].info["encoder_lr_scale"] == 1.0


def test_mode_and_init_checks() -> None:
    with pytest.raises(ValueError, match="finetune.modes.pixels"):
        check_modes("pixels", ["full"])
    with pytest.raises(ValueError, match="finetune.modes.ssl"):
        check_modes("ssl", ["linear", "linear"])
    with pytest.raises(ValueError, match="unknown arm"):
        check_modes("imagenet", ["full"])
    with pytest.raises(ValueError, match="pretrained encoder"):
        run_arm("ssl", ["linear"], labelled(), CFG, seed=0)


def test_lp_ft_starts_full_fine_tuning_from_the_linear_probe() -> None:
    """LP-FT (Kumar et al. 2022): at step 0 the classifier predicts what the probe predicts."""
    import dataclasses

    from medssl.train.arms import set_probe_head
    from medssl.train.finetune import embed
    from medssl.train.probe import fit_probe

    data = labelled()
    model = build_classifier("resnet18", 2, False, None, seed=0)
    f_train, f_scored = embed(model.encoder, data.x_train), embed(model.encoder, data.x_scored)
    probe = fit_probe(f_train, data.y_train, f_scored[data.is_val], data.y_scored[data.is_val],
                      (0.1, 1.0))  # fmt: skip
    set_probe_head(model, probe)
    model.eval()
    with torch.no_grad():
        got = torch.sigmoid(model(data.x_scored)).double().numpy()
    np.testing.assert_allclose(got, probe.predict(f_scored), atol=1e-4)
    cfg = dataclasses.replace(CFG, lp_ft=True)
    out = run_arm("scratch", ["full"], data, cfg, seed=0, log=lambda _: None)
    assert out["full"].info["lp_ft"] is True
    first = out["full"].info["history"][0]
    assert first[0] == 0 and first[1] == pytest.approx(probe.val_auroc, abs=1e-6)


@pytest.mark.parametrize(
    "arm, modes", [("pixels", ["logistic", "knn"]), ("ssl", ["linear", "knn"])]
)
def test_feature_flips_make_frozen_modes_blind_to_flips(arm: str, modes: list[str]) -> None:
    """``feature_flips``: a mirrored scored image gets its original's score; off, it does not."""
    import dataclasses

    data = labelled()
    mirrored = dataclasses.replace(data, x_scored=torch.flip(data.x_scored, (2, 3)))
    init = build_classifier("resnet18", 2, False, None, seed=5).encoder.state_dict()
    init = init if arm == "ssl" else None
    for flips in (True, False):
        cfg = dataclasses.replace(CFG, feature_flips=flips)
        a, b = (run_arm(arm, modes, d, cfg, seed=0, init=init, log=lambda _: None)
                for d in (data, mirrored))  # fmt: skip
        same = [np.allclose(a[m].raw, b[m].raw, atol=1e-6) for m in modes]
        assert all(same) if flips else not any(same)


def test_lp_ft_alone_draws_no_flipped_views() -> None:
    """Only ``full`` with LP-FT: the plain features serve, however ``feature_flips`` is set."""
    import dataclasses

    from medssl.train.arms import frozen_features

    data = labelled()
    cfg = dataclasses.replace(CFG, lp_ft=True, feature_flips=True)
    only_full = frozen_features("scratch", ["full"], cfg, None, 0, data.x_train, data.x_scored)
    with_probe = frozen_features(
        "scratch", ["linear", "full"], cfg, None, 0, data.x_train, data.x_scored
    )
    assert only_full is not None and with_probe is not None
    assert only_full.modes is only_full.lp_ft
    np.testing.assert_array_equal(only_full.lp_ft[0], with_probe.lp_ft[0])
    assert not np.allclose(with_probe.modes[0], with_probe.lp_ft[0])
