"""The `view` column's encoding: fields at their defaults are left out, and decoding restores them."""

from __future__ import annotations

import msgspec

from taskhub.projections.runs import ArtifactView, ProgressView, RunView
from taskhub.projections.tables import RUN_DECODER, encode_run

QUEUED = RunView(run_id="r-1", task_id="t", params={"n": 1}, status="queued", num=1, last_seq=1)


def test_a_queued_run_is_stored_without_its_empty_fields() -> None:
    stored = msgspec.json.decode(encode_run(QUEUED))
    assert stored == {"run_id": "r-1", "task_id": "t", "params": {"n": 1}, "status": "queued", "num": 1, "last_seq": 1}
    assert RUN_DECODER.decode(encode_run(QUEUED)) == QUEUED


def test_every_field_round_trips_whether_default_or_not() -> None:
    full = msgspec.structs.replace(
        QUEUED,
        status="failed",
        attempt=2,
        max_attempts=3,
        timeout_s=1.5,
        worker_id="w-1",
        fence=7,
        pid=10,
        argv=["a", "b"],
        exit_code=0,  # a falsy value that is not the default (None) must be kept
        progress=ProgressView(pct=0.0, message=None, extra={}),
        artifacts=[ArtifactView("out.txt")],
        result={"ok": False},
        reaped=1,
    )
    assert RUN_DECODER.decode(encode_run(full)) == full
    assert msgspec.json.decode(encode_run(full))["exit_code"] == 0


def test_the_run_view_itself_still_shows_every_field() -> None:
    """Only the stored form omits defaults: the CLI and the API encode RunView with all its fields."""
    assert set(msgspec.to_builtins(QUEUED)) == set(RunView.__struct_fields__)
