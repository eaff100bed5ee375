"""What every params section shares: the model base class, ``ParamsError``, one-line errors.

Each section of ``params.yaml`` is a frozen pydantic model (:class:`Section`) that refuses
unknown keys and does not coerce types (``"3"`` is not an integer, ``1`` is not a boolean;
an integer is accepted where a float is expected). A failed validation becomes one
:class:`ParamsError` line that names each offending key, e.g.
``params.yaml: finetune.budgets[1]: a budget is a label count, a fraction or 'all'``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

#: Errors listed in one message; the rest are counted.
MAX_LISTED = 3
#: Longest quoted input in a message.
MAX_INPUT = 60


class ParamsError(ValueError):
    """A missing or malformed value in ``params.yaml`` (the message names the key)."""


class Section(BaseModel):
    """Base of every params model: frozen, strict types, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _strings(value: Any) -> Any:
    """YAML scalars as strings (``[1, "0"]`` -> ``["1", "0"]``); other input passes on."""
    if isinstance(value, list):
        return [str(v) if isinstance(v, int | float | str) else v for v in value]
    return value


PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
#: A list of values compared as text (label values): scalars become strings.
TextList = Annotated[list[str], BeforeValidator(_strings)]


def without_nulls(data: Any, keys: Sequence[str]) -> Any:
    """``data`` without the ``keys`` whose value is null, so that they take their defaults."""
    if not isinstance(data, Mapping):
        return data
    return {k: v for k, v in data.items() if not (v is None and k in keys)}


def params_error(
    exc: ValidationError, model: type[BaseModel], where: str, prefix: tuple[str, ...] = ()
) -> ParamsError:
    """One line naming every offending key of a failed validation.

    Args:
        exc: the pydantic error.
        model: the model that was validated (to suggest a key for an unknown one).
        where: what was read, e.g. ``"params.yaml"``.
        prefix: keys above the model (``("ingest",)`` when only that section was read).

    Returns:
        ``"<where>: <key>: <problem>[; <key>: <problem>] [(and N more)]"``.
    """
    errors = exc.errors(include_url=False)
    parts = [_describe(e, model, prefix) for e in errors[:MAX_LISTED]]
    more = f" (and {len(errors) - MAX_LISTED} more)" if len(errors) > MAX_LISTED else ""
    return ParamsError(f"{where}: {'; '.join(parts)}{more}")


def dotted(loc: Sequence[int | str]) -> str:
    """``("finetune", "budgets", 1)`` -> ``"finetune.budgets[1]"``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(error: ErrorDetails, model: type[BaseModel], prefix: tuple[str, ...]) -> str:
    loc, kind, msg = error["loc"], error["type"], error["msg"]
    key = dotted((*prefix, *loc))
    if kind == "missing":
        return f"{key}: missing key"
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return f"{key}: unknown key{hint}"
    if kind == "value_error":
        return f"{key}: {msg.removeprefix('Value error, ')}"
    shown = repr(error.get("input"))
    if len(shown) > MAX_INPUT:
        shown = shown[: MAX_INPUT - 3] + "..."
    return f"{key}: {msg.replace('Input should be', 'must be')}, got {shown}"


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Field names of the nested model found at ``loc`` (empty when there is none)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class in ``X`` or ``X | None`` (None for anything else)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
