"""A task whose process tree has a grandchild outside the process group (fault tests)."""

import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    seconds: float = 600.0  # how long every process of the tree lives
    retry_seconds: float | None = None  # how long it lives on attempts after the first (default: seconds)
    ignore_term: bool = False  # every process ignores SIGTERM (noting it), so only SIGKILL works


def build_command(params: Params) -> list[str]:
    argv = ["python3", "tasks/scripts/orphan_tree.py", str(params.seconds)]
    if params.retry_seconds is not None:
        argv += ["--retry-seconds", str(params.retry_seconds)]
    return argv + (["--ignore-term"] if params.ignore_term else [])


task = TaskSpec(
    task_id="orphan_tree",
    name="Orphan tree",
    params_model=Params,
    build_command=build_command,
    description="Forks a child that forks a grandchild calling setsid(); all sleep. Pids go to $TASKHUB_RUN_DIR.",
)
