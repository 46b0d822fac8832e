from typing import Annotated

import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    steps: Annotated[int, msgspec.Meta(ge=1, le=100_000, description="How many steps to run")] = 10
    delay: Annotated[float, msgspec.Meta(ge=0, le=3600, description="Seconds to wait per step")] = 0.5


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/long_task.py", "--steps", str(params.steps), "--delay", str(params.delay)]


task = TaskSpec(
    task_id="long_task",
    name="Long task",
    params_model=Params,
    build_command=build_command,
    description="Works through steps, reporting progress, then writes report.txt as an artifact.",
)
