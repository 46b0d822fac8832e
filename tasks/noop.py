import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return ["true"]


task = TaskSpec(
    task_id="noop",
    name="No-op",
    params_model=Params,
    build_command=build_command,
    description="Runs `true` (for tests and benchmarks).",
)
