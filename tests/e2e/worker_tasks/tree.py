import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pids_file: str
    ignore_term: bool = False


def build_command(params: Params) -> list[str]:
    argv = ["python3", "tasks/scripts/tree.py", params.pids_file]
    return argv + (["--ignore-term"] if params.ignore_term else [])


task = TaskSpec(
    task_id="tree",
    name="Process tree",
    params_model=Params,
    build_command=build_command,
    description="parent -> child -> grandchild that calls setsid(); all wait forever (tests: nothing survives).",
)
