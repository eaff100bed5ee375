"""Untyped look-ups in a params mapping, for the stage scripts not yet on :class:`Params`.

Kept only until ``pipelines/pretrain.py`` reads the typed models (see
:mod:`medssl.params.load`); new code uses :func:`medssl.params.read_params`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from medssl.params.base import ParamsError

T = TypeVar("T")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file.

    Args:
        path: YAML file, one section per stage.

    Returns:
        The parsed mapping.

    Raises:
        ParamsError: when the file is missing, unparsable or not a mapping.
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError as exc:
        raise ParamsError(f"{p}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise ParamsError(f"{p}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{p}: expected a mapping of sections at top level")
    return data


def get(params: Mapping[str, Any], dotted: str, kind: type[T] | tuple[type, ...]) -> T:
    """Fetch ``a.b.c`` from nested params and check its type.

    Args:
        params: the parsed params mapping.
        dotted: dotted key, e.g. ``"pretrain.epochs"``.
        kind: expected Python type(s). ``int`` is accepted where ``float`` is expected.

    Returns:
        The value.

    Raises:
        ParamsError: naming the key when it is missing or of the wrong type.
    """
    node: Any = params
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(dotted.split(".")[: i + 1])
            raise ParamsError(f"params.yaml: missing key '{where}'")
        node = node[part]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(node, int) and not isinstance(node, bool):
        node = float(node)
    if isinstance(node, bool) and bool not in kinds:
        raise ParamsError(f"params.yaml: '{dotted}' must be {_names(kinds)}, got a boolean")
    if not isinstance(node, kinds):
        raise ParamsError(
            f"params.yaml: '{dotted}' must be {_names(kinds)}, got {type(node).__name__} {node!r}"
        )
    return node  # type: ignore[return-value]


def get_positive(params: Mapping[str, Any], dotted: str, kind: type[T]) -> T:
    """Like :func:`get` for numbers that must be > 0."""
    value = get(params, dotted, kind)
    if not value > 0:  # type: ignore[operator]
        raise ParamsError(f"params.yaml: '{dotted}' must be > 0, got {value!r}")
    return value


def _names(kinds: tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def tracked_file(params: Mapping[str, Any], dotted: str, folder: Path) -> Path | None:
    """A file named by params that must lie inside ``folder`` (a folder DVC tracks).

    Label sets and reserve lists live outside the ingested sources, in a folder that only
    the stages using them depend on: a new label set then never re-runs ingestion or
    pretraining. A file elsewhere would not be tracked, so it is refused.

    Args:
        params: the parsed params mapping.
        dotted: key holding a path or null, e.g. ``"labels.path"``.
        folder: the tracked folder (``labels/``).

    Returns:
        The path, or None when the key is null.

    Raises:
        ParamsError: naming the key when the path lies outside ``folder``.
    """
    value: str | None = get(params, dotted, (str, type(None)))
    if value is None:
        return None
    path = Path(str(value))
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ParamsError(
            f"params.yaml: '{dotted}' must name a file inside {folder}/ (the folder DVC tracks "
            f"for it), got {value!r}"
        )
    return path
