import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/show_env.py"]


task = TaskSpec(
    task_id="show_env",
    name="Show environment",
    params_model=Params,
    build_command=build_command,
    description="Reports the run's environment and working directory as its result.",
)
