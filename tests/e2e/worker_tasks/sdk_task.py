import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/sdk_task.py"]


task = TaskSpec(
    task_id="sdk_task",
    name="SDK task",
    params_model=Params,
    build_command=build_command,
    description="Uses taskhub.sdk for progress, an artifact and a result.",
)
