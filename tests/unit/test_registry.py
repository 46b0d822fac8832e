"""TaskSpec validation and the params helpers: schema, validation, CLI coercion, argv building."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import pydantic
import pytest

from taskhub import TaskSpec
from taskhub.errors import InvalidParams, TaskHubError
from taskhub.registry import (
    InvalidTaskSpec,
    build_argv,
    coerce_cli_params,
    params_schema,
    validate_params,
)


class Params(msgspec.Struct):
    target: str
    times: int = 1


class Inner(msgspec.Struct):
    a: int


class Rich(msgspec.Struct):
    name: str = "x"
    ratio: float = 0.5
    flag: bool = False
    maybe: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    tags: list[str] = []
    inner: Inner | None = None
    code: Annotated[int, msgspec.Meta(ge=0, le=255)] = 0


class Node(msgspec.Struct):
    value: int
    children: list[Node] = []


class Tree(msgspec.Struct):
    root: Node | None = None


class PydParams(pydantic.BaseModel):
    target: str
    times: int = 1


def hello_argv(params: Any) -> list[str]:
    return ["python3", "tasks/scripts/hello.py", "--target", params.target, "--times", str(params.times)]


def make(params_model: Any = Params, build_command: Any = hello_argv, **kwargs: Any) -> TaskSpec:
    return TaskSpec(
        task_id=kwargs.pop("task_id", "hello_world"),
        name=kwargs.pop("name", "Hello"),
        params_model=params_model,
        build_command=build_command,
        **kwargs,
    )


def test_spec_section_2_example_is_accepted_with_its_defaults() -> None:
    spec = make()
    assert (spec.description, spec.max_concurrency, spec.timeout_s, spec.max_attempts) == ("", None, None, 1)
    with pytest.raises(AttributeError):
        spec.task_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("task_id", ["", "Hello", "with space", "dots.not", "x" * 65, 7, "é"])
def test_bad_task_ids_are_refused(task_id: Any) -> None:
    with pytest.raises(InvalidTaskSpec, match="task_id"):
        make(task_id=task_id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "10"}, "timeout_s"),
        ({"name": ""}, "name"),
        ({"description": None}, "description"),
        ({"params_model": dict}, "params_model"),
        ({"build_command": "echo"}, "build_command"),
    ],
)
def test_bad_fields_are_refused_naming_them(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidTaskSpec, match=field):
        make(**kwargs)
    assert issubclass(InvalidTaskSpec, TaskHubError)


def test_no_params_model_means_an_empty_params_object() -> None:
    spec = make(params_model=None, build_command=lambda _p: ["true"])
    assert build_argv(spec, {}) == ["true"]
    assert build_argv(spec, None) == ["true"]
    with pytest.raises(InvalidParams) as info:
        build_argv(spec, {"x": 1})
    assert info.value.field == "x"


def test_schema_is_an_inlined_object_schema() -> None:
    schema = params_schema(make(params_model=Rich))
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "$defs" not in schema and "$ref" not in str(schema)
    inner = schema["properties"]["inner"]["anyOf"][0]
    assert inner["properties"] == {"a": {"type": "integer"}}
    assert schema["properties"]["code"]["maximum"] == 255


def test_schema_of_a_recursive_model_keeps_the_defs_it_needs() -> None:
    schema = params_schema(make(params_model=Tree))
    node = schema["properties"]["root"]["anyOf"][0]
    assert node["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert set(schema["$defs"]) == {"Node"}


def test_validation_returns_the_model_instance() -> None:
    assert validate_params(make(), {"target": "x", "times": 3}) == Params("x", 3)


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        ({"target": "x", "times": "3"}, "times", "Expected `int`, got `str`"),
        ({}, "target", "missing required field `target`"),
        ({"target": "x", "extra": 1}, "extra", "unknown field `extra`"),
    ],
)
def test_validation_errors_name_the_field(raw: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(make(), raw)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert info.value.status_code == 422


def test_nested_validation_errors_give_the_path() -> None:
    with pytest.raises(InvalidParams) as info:
        validate_params(make(params_model=Rich), {"inner": {"a": "no"}})
    assert info.value.field == "inner.a"
    with pytest.raises(InvalidParams) as info:
        validate_params(make(params_model=Rich), {"inner": {}})
    assert info.value.field == "inner.a"


def test_params_must_be_an_object() -> None:
    with pytest.raises(InvalidParams, match="JSON object"):
        validate_params(make(), ["x"])


def test_pydantic_models_work_like_msgspec_ones() -> None:
    spec = make(params_model=PydParams)
    assert build_argv(spec, {"target": "w", "times": 2})[-1] == "2"
    assert params_schema(spec)["required"] == ["target"]
    with pytest.raises(InvalidParams) as info:
        validate_params(spec, {"target": "w", "times": "many"})
    assert info.value.field == "times"
    with pytest.raises(InvalidParams) as info:
        validate_params(spec, {"times": 1})
    assert info.value.field == "target"
    with pytest.raises(InvalidParams) as info:
        validate_params(spec, {"target": "w", "nope": 1})
    assert info.value.field == "nope"


def test_cli_pairs_are_coerced_by_schema_type() -> None:
    spec = make(params_model=Rich)
    pairs = ["name=3", "ratio=2", "flag=yes", "maybe=null", "mode=slow", 'tags=["a","b"]', 'inner={"a":1}']
    raw = coerce_cli_params(spec, pairs)
    assert raw == {
        "name": "3",
        "ratio": 2.0,
        "flag": True,
        "maybe": None,
        "mode": "slow",
        "tags": ["a", "b"],
        "inner": {"a": 1},
    }
    assert validate_params(spec, raw).inner == Inner(1)
    assert coerce_cli_params(make(), ["target=a=b", "times=3"]) == {"target": "a=b", "times": 3}


def test_cli_values_that_do_not_fit_are_left_for_validation_to_name() -> None:
    raw = coerce_cli_params(make(), ["times=lots", "unknown=1"])
    assert raw == {"times": "lots", "unknown": "1"}
    with pytest.raises(InvalidParams, match="key=value"):
        coerce_cli_params(make(), ["times"])
    with pytest.raises(InvalidParams) as info:
        coerce_cli_params(make(params_model=Rich), ["tags=[oops"])
    assert info.value.field == "tags"


def test_build_argv_checks_what_build_command_returns() -> None:
    assert build_argv(make(), {"target": "x"}) == hello_argv(Params("x"))
    assert build_argv(make(), Params("y", 2))[3] == "y"
    for bad in ([], "echo hi", ["echo", 1], None):
        with pytest.raises(InvalidTaskSpec, match="build_command"):
            build_argv(make(build_command=lambda _p, bad=bad: bad), {"target": "x"})
    with pytest.raises(InvalidParams, match="NUL"):
        build_argv(make(), {"target": "a\0b"})


def test_exceptions_in_build_command_are_wrapped_with_their_message() -> None:
    def explode(params: Params) -> list[str]:
        raise ValueError(f"cannot greet {params.target}")

    with pytest.raises(InvalidParams, match="ValueError: cannot greet bob"):
        build_argv(make(build_command=explode), {"target": "bob"})
