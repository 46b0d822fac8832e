"""Checking a submission's params: the one way the API and the CLI turn them into a run's params.

Kept free of Litestar so the command line (taskhub/cli/submit.py) can use it without loading the web
framework.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from taskhub.errors import InvalidParams
from taskhub.registry import TaskSpec, build_argv, validate_params


def checked_params(spec: TaskSpec, raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate params (InvalidParams naming the field) and build the argv once, so a run that could
    never start is refused at submission. Returns the params with defaults filled in, as JSON values."""
    validated = validate_params(spec, raw)
    try:
        argv = build_argv(spec, validated)
    except InvalidParams as exc:
        field = _nul_field(raw) if exc.field is None and "NUL" in str(exc) else None
        if field is None:
            raise
        raise InvalidParams(f"{exc} (field `{field}`)", field=field) from None
    if isinstance(validated, msgspec.Struct):
        params = msgspec.to_builtins(validated)
    elif callable(dump := getattr(validated, "model_dump", None)):
        params = dump(mode="json")
    else:
        params = dict(raw)
    if (field := _non_finite_field(params)) is not None:
        # JSON has no inf or nan: stored, the value would come back as null and the run fail later
        raise InvalidParams(f"{field} must be a finite number: JSON cannot carry inf or nan", field=field)
    return params, argv


def _first_field(params: dict[str, Any], bad: Callable[[object], bool]) -> str | None:
    """The first param whose value is `bad`: the field an error names."""
    for key, value in params.items():
        if bad(value):
            return str(key)
    return None


def _non_finite_field(params: dict[str, Any]) -> str | None:
    """The first param holding inf or nan (the command line can give them: `-p seconds=inf`)."""
    return _first_field(params, _has_non_finite)


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


def _nul_field(raw: dict[str, Any]) -> str | None:
    """The first param whose value carries a NUL byte (no command line can): the field to name."""
    return _first_field(raw, _has_nul)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\0" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    return False
