"""The run fold's fast constructions give exactly what the plain keyword forms would."""

from __future__ import annotations

import ast
import gc
import inspect
import weakref

import pytest

from taskhub.events.clock import iso
from taskhub.events.types import EVENT_TYPES, Artifact, Envelope, Event, Exited, Submitted
from taskhub.projections import runs
from taskhub.projections import transitions as t
from taskhub.projections.runs import ArtifactView, RunView, apply_run
from taskhub.projections.state import gc_paused

NOW = 1_800_000_000.0


def env_of(event: Event, seq: int, run_id: str = "r-1") -> Envelope:
    return Envelope(seq, iso(NOW), event.__struct_config__.tag, run_id, "w-1", event, "")  # type: ignore[arg-type]


def test_submitted_builds_the_view_field_by_field() -> None:
    event = Submitted(
        task_id="t", params={"n": 1}, priority=3, max_attempts=2, timeout_s=9.5, not_before=iso(NOW + 5),
        idempotency_key="k", task_version="v1", retry_of="r-0",
    )  # fmt: skip
    expected = RunView(
        run_id="r-7", task_id="t", params={"n": 1}, status=t.QUEUED, num=7, priority=3, attempt=0,
        max_attempts=2, timeout_s=9.5, not_before=iso(NOW + 5), idempotency_key="k", task_version="v1",
        retry_of="r-0", submitted_at=iso(NOW), last_seq=7,
    )  # fmt: skip
    assert apply_run(None, env_of(event, 7, "r-7")) == expected


def test_an_artifact_on_one_run_leaves_every_other_run_without_any() -> None:
    """Runs folded from `submitted` share one empty artifacts list: adding one must build a new list."""
    first = apply_run(None, env_of(Submitted(task_id="t", params={}), 1, "r-1"))
    second = apply_run(None, env_of(Submitted(task_id="t", params={}), 2, "r-2"))
    assert first is not None and second is not None
    running = RunView(**{**{f: getattr(first, f) for f in RunView.__struct_fields__}, "status": t.RUNNING})
    after = apply_run(running, env_of(Artifact(fence=0, name="out.txt"), 3, "r-1"))
    assert after is not None and after.artifacts == [ArtifactView("out.txt")]
    assert first.artifacts == [] and second.artifacts == [] and running.artifacts == []
    third = apply_run(None, env_of(Submitted(task_id="t", params={}), 4, "r-3"))
    assert third is not None and third.artifacts == []


@pytest.mark.parametrize("outcome", [*t.OUTCOMES, "unheard_of"])
@pytest.mark.parametrize("reason", [None, "spawn_error"])
def test_an_exit_lands_where_the_transition_functions_say(outcome: str, reason: str | None) -> None:
    running = RunView(run_id="r-1", task_id="t", params={}, status=t.RUNNING, num=1, attempt=1, fence=5)
    event = Exited(fence=5, exit_code=1, signal=None, outcome=outcome, duration_s=1.0, reason=reason, error="e")
    after = apply_run(running, env_of(event, 9))
    assert after is not None
    assert after.status == t.exit_status(outcome)
    assert after.failure_reason == t.exit_failure_reason(outcome, reason)
    assert (after.outcome, after.error, after.last_seq, after.lease_expires_at) == (outcome, "e", 9, None)


def test_every_replace_in_the_fold_names_fields_in_the_views_order() -> None:
    """A performance property: msgspec finds each keyword from the field after the previous one, so
    out of order a replace() costs up to another lap of RunView's 36 fields per keyword."""
    order = {name: i for i, name in enumerate(RunView.__struct_fields__)}
    calls = [
        node
        for node in ast.walk(ast.parse(inspect.getsource(runs)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_replace"
    ]
    assert len(calls) >= 10
    for call in calls:
        named = [order[k.arg] for k in call.keywords if k.arg is not None]
        assert named == sorted(named), f"line {call.lineno}: {[k.arg for k in call.keywords]}"
    reset = [order[name] for name in runs._ATTEMPT_RESET]
    assert reset == sorted(reset)


def test_gc_paused_restores_the_gc_and_promotes_without_losing_cycles() -> None:
    class Node:
        ref: object = None

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        cycle = Node()
        cycle.ref = cycle
        alive = weakref.ref(cycle)
        del cycle
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert alive() is not None  # promoted to the oldest generation, not collected on the way out
    gc.collect()
    assert alive() is None  # a full collection still frees it

    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's own pause is left alone
    finally:
        gc.enable()


def test_gc_paused_leaves_frozen_objects_frozen() -> None:
    """The API server freezes what its startup made; a replay inside it must not unfreeze that."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with gc_paused():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_the_handlers_are_exactly_the_pairs_of_the_transition_table() -> None:
    pairs = {(status, cls.__struct_config__.tag) for cls, by_status in runs.HANDLERS.items() for status in by_status}
    assert pairs == {pair for pair in t.TRANSITIONS if pair[0] is not None}
    assert set(runs.HANDLERS) == set(EVENT_TYPES)  # every class has an entry: only the status can miss
