"""model.init: weights on disk start the encoder; a wrong file fails with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medssl.models.encoders import build_encoder
from medssl.models.init import InitError, file_sha256, load_init


def test_plain_and_wrapped_state_dicts_load(tmp_path: Path) -> None:
    encoder, _ = build_encoder("resnet10", 2, 1, False)
    state = encoder.state_dict()
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pt"
    torch.save(state, plain)
    torch.save({"state_dict": {f"module.encoder.{k}": v for k, v in state.items()}}, wrapped)
    for path in (plain, wrapped):
        got, digest = load_init(path, "resnet10", 2, False)
        assert digest == file_sha256(path) and len(digest) == 64
        assert got.keys() == state.keys()
        assert all(torch.equal(got[k], state[k]) for k in state)


def test_wrong_weights_fail_naming_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(build_encoder("resnet18", 2, 1, False)[0].state_dict(), path)
    with pytest.raises(InitError, match=r"other.pt does not fit model.encoder=resnet10.*"
                       r"unexpected key"):  # fmt: skip
        load_init(path, "resnet10", 2, False)
    torch.save(build_encoder("resnet10", 3, 1, False)[0].state_dict(), path)
    with pytest.raises(InitError, match=r"shape mismatch\(es\): conv1.weight"):
        load_init(path, "resnet10", 2, False)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InitError, match="not a torch weights file"):
        load_init(path, "resnet10", 2, False)
    with pytest.raises(InitError, match="file not found"):
        load_init(tmp_path / "none.pt", "resnet10", 2, False)
