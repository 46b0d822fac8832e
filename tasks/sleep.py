from typing import Annotated

import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    seconds: Annotated[float, msgspec.Meta(ge=0, description="How long to sleep")] = 1.0


def build_command(params: Params) -> list[str]:
    return ["sleep", str(params.seconds)]


task = TaskSpec(
    task_id="sleep",
    name="Sleep",
    params_model=Params,
    build_command=build_command,
    description="Sleeps, doing nothing else (for tests and benchmarks).",
)
