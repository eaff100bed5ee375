"""The label-efficiency benchmark's presets: chains resolve, cycles fail, every preset is valid."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml

from medssl.params.load import Params, validate
from tests.conftest import REPO, load_script


def _script() -> ModuleType:
    return load_script("label_efficiency")


def test_a_preset_merges_its_base_key_by_key() -> None:
    presets: dict[str, Any] = {
        "a": {"pretrain": {"epochs": 8, "lr": 0.1}, "model": {"image_size": 28}},
        "b": {"extends": "a", "pretrain": {"epochs": 250}},
        "c": {"extends": "b", "model": {"small_input": True}},
    }
    got = _script().resolve_preset(presets, "c")
    assert got == {
        "pretrain": {"epochs": 250, "lr": 0.1},
        "model": {"image_size": 28, "small_input": True},
    }


@pytest.mark.parametrize(
    ("presets", "message"),
    [
        ({"a": {"extends": "nope"}}, "preset 'a' extends unknown preset 'nope'"),
        ({"a": {"extends": "a"}}, "presets extend in a cycle: a -> a"),
        (
            {"a": {"extends": "b"}, "b": {"extends": "c"}, "c": {"extends": "a"}},
            "presets extend in a cycle: a -> b -> c -> a",
        ),
    ],
)
def test_a_broken_chain_stops_with_one_line(presets: dict[str, Any], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        _script().resolve_preset(presets, "a")


def test_every_shipped_preset_makes_valid_params() -> None:
    script = _script()
    presets = yaml.safe_load(script.PRESETS.read_text())
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    assert {"full", "fast", "long", "quick"} <= set(presets)
    for name in presets:
        params = validate(Params, script.merge(base, script.resolve_preset(presets, name)))
        assert params.model.image_size == 28, name
