import msgspec

from taskhub import TaskSpec

MISSING = "taskhub-e2e-no-such-executable"


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return [MISSING, "--flag"]


task = TaskSpec(
    task_id="missing_exe",
    name="Missing executable",
    params_model=Params,
    build_command=build_command,
    description="Its command names an executable that does not exist (tests: spawn_error).",
)
