from typing import Annotated

import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    code: Annotated[int, msgspec.Meta(ge=0, le=255, description="Exit code")] = 1
    message: str = "boom"


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/fail.py", "--code", str(params.code), "--message", params.message]


task = TaskSpec(
    task_id="fail_task",
    name="Failing task",
    params_model=Params,
    build_command=build_command,
    description="Prints a message to stderr and exits with the given code.",
)
