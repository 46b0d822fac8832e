import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pids_file: str
    ignore_term: bool = False


def build_command(params: Params) -> list[str]:
    argv = ["python3", "tasks/scripts/tree.py", params.pids_file]
    return argv + (["--ignore-term"] if params.ignore_term else [])


task = TaskSpec(
    task_id="tree_timeout",
    name="Process tree with a timeout",
    params_model=Params,
    build_command=build_command,
    description="The tree task, stopped after one second (tests: timeout kills the whole tree).",
    timeout_s=1.0,
)
