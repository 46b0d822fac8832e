import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    target: str
    times: int = 1


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/hello.py", "--target", params.target, "--times", str(params.times)]


task = TaskSpec(
    task_id="hello_world",
    name="Hello Task",
    params_model=Params,
    build_command=build_command,
    description="Greets a target.",
)
