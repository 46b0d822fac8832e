import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    pass


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/emit_bytes.py"]


task = TaskSpec(
    task_id="emit_bytes",
    name="Emit bytes",
    params_model=Params,
    build_command=build_command,
    description="Writes a fixed, awkward byte string to stdout and stderr (tests: logs are byte-exact).",
)
