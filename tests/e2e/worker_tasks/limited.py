import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    seconds: float = 0.3


def build_command(params: Params) -> list[str]:
    return ["sleep", str(params.seconds)]


task = TaskSpec(
    task_id="limited",
    name="Limited",
    params_model=Params,
    build_command=build_command,
    description="Sleeps; at most two at once across all workers (tests: max_concurrency).",
    max_concurrency=2,
)
