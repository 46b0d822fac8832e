import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    mib: int = 50
    result: bool = False  # end with a `result` line after all that output


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/big_output.py", str(params.mib)] + (["--result"] if params.result else [])


task = TaskSpec(
    task_id="big_output",
    name="Big output",
    params_model=Params,
    build_command=build_command,
    description="Writes `mib` MiB to stdout in 100-byte lines, one write each (tests: chatty tasks, log cap).",
)
