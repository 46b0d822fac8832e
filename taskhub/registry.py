"""TaskSpec: what a task file declares, and the pure helpers every interface uses with it.

Params models are msgspec Structs, or pydantic BaseModels (v2) when pydantic is installed. pydantic is
never imported here: a model is recognised by its `model_validate` / `model_json_schema` methods, so
this module stays cheap to import from task files and scripts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from taskhub.errors import ConfigError, InvalidParams, TaskHubError

TASK_ID_RE = re.compile(r"[a-z0-9_-]+")
TASK_ID_MAX = 64


class InvalidTaskSpec(ConfigError):
    """The task definition is invalid."""


class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    """The params model of a task that takes none (params_model=None)."""


def _is_pydantic_model(model: object) -> bool:
    return isinstance(model, type) and all(
        callable(getattr(model, name, None)) for name in ("model_validate", "model_json_schema")
    )


def _is_msgspec_model(model: object) -> bool:
    return isinstance(model, type) and issubclass(model, msgspec.Struct)


@dataclass(frozen=True)
class TaskSpec:
    """One task: its id, its params model and how to turn validated params into an argv."""

    task_id: str
    name: str
    params_model: Any
    build_command: Callable[[Any], list[str]]
    description: str = ""
    max_concurrency: int | None = None
    timeout_s: float | None = None
    max_attempts: int = 1

    def __post_init__(self) -> None:
        tid = self.task_id
        if not isinstance(tid, str) or not TASK_ID_RE.fullmatch(tid) or len(tid) > TASK_ID_MAX:
            raise InvalidTaskSpec(f"task_id must match [a-z0-9_-]+ (at most {TASK_ID_MAX} chars), got {tid!r}")
        if self.params_model is None:
            object.__setattr__(self, "params_model", NoParams)  # frozen: set once, here only
        problem = _spec_problem(self)
        if problem:
            raise InvalidTaskSpec(f"task {tid!r}: {problem}")


def _spec_problem(spec: TaskSpec) -> str | None:
    """What is wrong with the spec's fields other than task_id, if anything."""
    limit, timeout, attempts = spec.max_concurrency, spec.timeout_s, spec.max_attempts
    if not isinstance(spec.name, str) or not spec.name.strip():
        return f"name must be a non-empty string, got {spec.name!r}"
    if not (_is_msgspec_model(spec.params_model) or _is_pydantic_model(spec.params_model)):
        return f"params_model must be a msgspec.Struct or pydantic BaseModel class, got {spec.params_model!r}"
    if not callable(spec.build_command):
        return "build_command must be callable"
    if not isinstance(spec.description, str):
        return "description must be a string"
    if limit is not None and not (_is_int(limit) and limit >= 1):
        return f"max_concurrency must be None or an int >= 1, got {limit!r}"
    if timeout is not None and not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool)):
        return f"timeout_s must be None or a number > 0, got {timeout!r}"
    if timeout is not None and not timeout > 0:
        return f"timeout_s must be None or a number > 0, got {timeout!r}"
    if not (_is_int(attempts) and attempts >= 1):
        return f"max_attempts must be an int >= 1, got {attempts!r}"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def params_schema(spec: TaskSpec) -> dict[str, Any]:
    """JSON Schema of the params, an `object` schema with local $refs inlined for form generators."""
    model = spec.params_model
    raw: dict[str, Any] = model.model_json_schema() if _is_pydantic_model(model) else msgspec.json.schema(model)
    schema = _inline_refs(raw)
    if schema.get("type") != "object":
        raise InvalidTaskSpec(f"task {spec.task_id!r}: params_model must describe a JSON object")
    if _is_msgspec_model(model) or not _pydantic_allows_extra(model):
        schema["additionalProperties"] = False  # validate_params rejects unknown fields
    return schema


def _pydantic_allows_extra(model: Any) -> bool:
    return _is_pydantic_model(model) and model.model_config.get("extra") == "allow"


@functools.lru_cache(maxsize=256)  # per model class: computing it was ~15% of a submit's CPU in the API
def _allowed_keys(model: Any) -> frozenset[str] | None:
    """Top-level keys the model accepts, or None when it takes any."""
    if _is_msgspec_model(model):
        return frozenset(f.encode_name for f in msgspec.structs.fields(model))
    if _pydantic_allows_extra(model):
        return None
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(name)
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                keys.add(alias)
    return frozenset(keys)


def validate_params(spec: TaskSpec, raw: object) -> Any:
    """The params model instance for `raw` (a JSON object), or InvalidParams naming the field."""
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise InvalidParams(f"params must be a JSON object, got {type(raw).__name__}")
    allowed = _allowed_keys(spec.params_model)
    if allowed is not None:
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            raise InvalidParams(f"Object contains unknown field `{unknown[0]}`", field=unknown[0])
    if _is_pydantic_model(spec.params_model):
        return _validate_pydantic(spec.params_model, raw)
    try:
        return msgspec.convert(dict(raw), spec.params_model)
    except msgspec.ValidationError as exc:
        message = str(exc)
        raise InvalidParams(message, field=_field_from_msgspec_error(message)) from None


def _validate_pydantic(model: Any, raw: Mapping[Any, Any]) -> Any:
    try:
        return model.model_validate(dict(raw))
    except Exception as exc:  # pydantic.ValidationError, without importing pydantic
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            raise
        details = errors()
        first = details[0] if details else {}
        field = ".".join(str(part) for part in first.get("loc", ())) or None
        messages = "; ".join(
            f"{d.get('msg', 'invalid')} - at `$.{'.'.join(str(p) for p in d.get('loc', ()))}`" for d in details
        )
        raise InvalidParams(messages or str(exc), field=field) from None


def build_argv(spec: TaskSpec, raw_params: object) -> list[str]:
    """Validate the params and return the argv the run executes (never run through a shell)."""
    params = raw_params if isinstance(raw_params, spec.params_model) else validate_params(spec, raw_params)
    try:
        argv = spec.build_command(params)
    except TaskHubError:
        raise
    except Exception as exc:
        raise InvalidParams(f"build_command failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(argv, (list, tuple)) or not argv:
        raise InvalidTaskSpec(f"task {spec.task_id!r}: build_command must return a non-empty list of str, got {argv!r}")
    for i, arg in enumerate(argv):
        if not isinstance(arg, str):
            raise InvalidTaskSpec(
                f"task {spec.task_id!r}: build_command returned a non-str argument at index {i}: {arg!r}"
            )
        if "\0" in arg:
            raise InvalidParams(f"argument {i} contains a NUL byte, which no command line can carry")
    return list(argv)


def coerce_cli_params(spec: TaskSpec, pairs: list[str]) -> dict[str, Any]:
    """CLI `key=value` strings as JSON values by the schema's types: `times=3` is 3 for an int field,
    "3" for a str one; lists and objects are JSON; unknown keys stay strings so validation names them."""
    properties: dict[str, Any] = params_schema(spec).get("properties", {})
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidParams(f"expected key=value, got {pair!r}")
        out[key] = _coerce(text, properties.get(key), key)
    return out


def _coerce(text: str, prop: Any, key: str) -> Any:
    if not isinstance(prop, dict):
        return text
    enum = prop.get("enum")
    if isinstance(enum, list):
        for choice in enum:
            if choice == text or (not isinstance(choice, str) and msgspec.json.encode(choice) == text.encode()):
                return choice
    types = _property_types(prop)
    if not types:  # untyped (Any): JSON if it parses, else the plain string
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            return text
    if "null" in types and (text == "null" or ("string" not in types and text.lower() in ("", "none"))):
        return None
    if "string" in types:
        return text
    if "boolean" in types and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(text)
            except ValueError:
                pass
    if types & {"array", "object"}:
        try:
            return msgspec.json.decode(text)
        except msgspec.DecodeError:
            raise InvalidParams(f"`{key}` must be JSON ({'/'.join(sorted(types))}), got {text!r}", key) from None
    return text  # validation reports the type mismatch, naming the field


_BOOLS = dict.fromkeys(("true", "yes", "on", "1"), True) | dict.fromkeys(("false", "no", "off", "0"), False)


# --- JSON Schema and error-message helpers -------------------------------------------------------

_AT_RE = re.compile(r" - at `\$\.?([^`]*)`$")
_NAMED_FIELD_RE = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")


def _field_from_msgspec_error(message: str) -> str | None:
    """`Expected int, got str - at $.times` -> "times"; a missing or unknown field is appended."""
    at = _AT_RE.search(message)
    path = at.group(1) if at else ""
    named = _NAMED_FIELD_RE.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path or None


def _property_types(prop: dict[str, Any]) -> set[str]:
    """The JSON types a property allows, looking through anyOf/oneOf (how Optional is spelled)."""
    found: set[str] = set()
    kind = prop.get("type")
    if isinstance(kind, str):
        found.add(kind)
    elif isinstance(kind, list):
        found.update(k for k in kind if isinstance(k, str))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in prop.get(key) or ():
            if isinstance(option, dict):
                found |= _property_types(option)
    return found


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace local `#/$defs/X` refs by their definitions; recursive models keep a $ref and $defs."""
    defs: dict[str, Any] = dict(schema.get("$defs") or {})
    recursive: set[str] = set()

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in defs and name not in stack:
                rest = {k: walk(v, stack) for k, v in node.items() if k not in ("$ref", "$defs")}
                return {**walk(defs[name], (*stack, name)), **rest}
            recursive.add(name)
            return dict(node)
        return {k: walk(v, stack) for k, v in node.items() if k != "$defs"}

    out: dict[str, Any] = walk(schema, ())
    kept: dict[str, Any] = {}
    while recursive - kept.keys():  # a self-referencing model cannot be fully inlined: keep its $defs
        name = min(recursive - kept.keys())
        kept[name] = walk(defs[name], (name,)) if name in defs else {}
    if kept:
        out["$defs"] = kept
    return out
