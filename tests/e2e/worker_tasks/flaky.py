import msgspec

from taskhub import TaskSpec


class Params(msgspec.Struct):
    fail_attempts: int = 1


def build_command(params: Params) -> list[str]:
    return ["python3", "tasks/scripts/flaky.py", str(params.fail_attempts)]


task = TaskSpec(
    task_id="flaky",
    name="Flaky",
    params_model=Params,
    build_command=build_command,
    description="Fails while $TASKHUB_ATTEMPT <= fail_attempts, then succeeds (tests: retries).",
    max_attempts=3,
)
