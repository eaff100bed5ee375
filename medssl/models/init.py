"""Start an encoder from weights the user has on disk (``model.init``); never download.

Accepted files (``torch.load(weights_only=True)``): a plain ``state_dict`` of the configured
encoder (e.g. ``models/pretrain/encoder.pt`` of an earlier medssl run, or a public
foundation model's checkpoint converted to it), or a dict holding one under ``state_dict``,
``model`` or ``encoder``; a leading ``module.``, ``encoder.`` or ``backbone.`` on every key
is dropped. Keys and shapes must match the encoder exactly; a mismatch is one clear error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from medssl.models.encoders import build_encoder

StateDict = dict[str, torch.Tensor]
#: Containers that wrap a state dict in common checkpoint formats, tried in order.
WRAPPERS = ("state_dict", "model", "encoder")
#: Key prefixes added by DDP (``module.``) and SSL wrappers, dropped when on every key.
PREFIXES = ("module.", "encoder.", "backbone.")


class InitError(ValueError):
    """Weights that cannot start the configured encoder; the message names the file."""


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _unwrap(obj: object, path: Path) -> StateDict:
    while isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise InitError(f"{path}: no state dict of tensors (looked under {list(WRAPPERS)})")
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise InitError(f"{path}: not a state dict of tensors")
    state: StateDict = obj
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _listed(keys: list[str]) -> str:
    more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
    return ", ".join(keys[:3]) + more


def load_init(
    path: Path, encoder: str, spatial_dims: int, small_input: bool
) -> tuple[StateDict, str]:
    """Read and check initial encoder weights.

    Args:
        path: weights file.
        encoder: encoder name (:data:`medssl.models.encoders.ENCODERS`).
        spatial_dims: 2 or 3.
        small_input: small-image stem.

    Returns:
        ``(state_dict, sha256 of the file)``; the state loads into
        ``build_encoder(encoder, spatial_dims, 1, small_input)`` with ``strict=True``.

    Raises:
        InitError: unreadable file, or keys / shapes that do not fit (named, with counts).
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise InitError(f"model.init: {path}: file not found") from exc
    except Exception as exc:  # noqa: BLE001 (pickle/zip errors have many types)
        msg = f"model.init: {path}: not a torch weights file ({type(exc).__name__})"
        raise InitError(msg) from exc
    state = _unwrap(obj, path)
    want = build_encoder(encoder, spatial_dims, 1, small_input)[0].state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(want[k].shape)}"
        for k in set(want) & set(state)
        if state[k].shape != want[k].shape
    )
    problems = [
        f"{len(missing)} missing key(s): {_listed(missing)}" if missing else "",
        f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}" if unexpected else "",
        f"{len(shapes)} shape mismatch(es): {_listed(shapes)}" if shapes else "",
    ]
    found = "; ".join(p for p in problems if p)
    if found:
        raise InitError(
            f"model.init: {path} does not fit model.encoder={encoder} "
            f"(spatial_dims={spatial_dims}, small_input={small_input}): {found}"
        )
    return {k: v.to(want[k].dtype) for k, v in state.items()}, file_sha256(path)
