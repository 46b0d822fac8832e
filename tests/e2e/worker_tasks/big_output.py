import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    mib: int = 50
    result: bool = False  # end with a `result` line after all that output...
    result_after_s: float = 0.0  # ...this long after it


def build_command(params: Params) -> list[str]:
    result = ["--result", str(params.result_after_s)] if params.result else []
    return ["python3", "tasks/scripts/big_output.py", str(params.mib), *result]


task = TaskSpec(
    task_id="big_output",
    name="Big output",
    params_model=Params,
    build_command=build_command,
    description="Writes `mib` MiB to stdout in 100-byte lines, one write each (tests: chatty tasks, log cap).",
)
