import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    count: int = 10_000


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/progress_flood.py", str(params.count)]


task = TaskSpec(
    task_id="progress_flood",
    name="Progress flood",
    params_model=Params,
    build_command=build_command,
    description="Prints `count` progress lines in a tight loop, the last at 100% (tests: coalescing).",
)
