"""The whole projected state folded from events: runs, workers and the queue, at any point in the log."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import msgspec

from taskhub.events.rows import Row
from taskhub.events.types import EVENT_DECODER, Envelope, Submitted
from taskhub.projections import transitions as t
from taskhub.projections.runs import HANDLERS, RunView, apply_run, submitted
from taskhub.projections.workers import WorkerView, apply_worker, step_worker


class State(msgspec.Struct):
    runs: dict[str, RunView] = {}
    workers: dict[str, WorkerView] = {}
    last_seq: int = 0


def fold(events: Iterable[Envelope], state: State | None = None) -> State:
    """Fold envelopes into a state. Replay and rebuild fold raw rows (fold_rows) and audit folds as it
    checks (audit._Invariants): the same handlers and transition table, through apply_run or its copy."""
    state = state if state is not None else State()
    runs, workers = state.runs, state.workers
    last = state.last_seq
    was_enabled = gc.isenabled()
    gc.disable()  # see gc_paused(); inline because the CLI's import folds one event per call
    try:
        for env in events:
            run_id = env.run_id
            if run_id is not None:
                view = apply_run(runs.get(run_id), env)
                if view is not None:
                    runs[run_id] = view
            elif env.worker_id is not None:
                wview = apply_worker(workers.get(env.worker_id), env)
                if wview is not None:
                    workers[env.worker_id] = wview
            last = env.seq
    finally:
        if was_enabled:
            gc.enable()
    state.last_seq = last
    return state


def fold_rows(batches: Iterable[Sequence[Row]], state: State | None = None) -> State:
    """`fold` over raw rows in batches: each event decoded and folded in one loop, with no Envelope and
    no generator between the rows and the fold (replay's hot path: see taskhub.events.rows).

    The run step is `runs.apply_run` written out for a row (a call per event cost ~5% of a replay): the
    same handlers, the same table, and tests that hold the two folds equal at every seq."""
    state = state if state is not None else State()
    runs, workers = state.runs, state.workers
    get_run = runs.get
    decode = EVENT_DECODER.decode
    handlers = HANDLERS
    replace = msgspec.structs.replace
    last = state.last_seq
    with gc_paused():
        for rows in batches:
            for seq, ts, run_id, worker_id, data in rows:
                event = decode(data)
                if run_id is not None:
                    view = get_run(run_id)
                    if view is None:
                        if isinstance(event, Submitted):
                            runs[run_id] = submitted(run_id, event, seq, ts)
                        continue
                    handler = handlers[event.__class__].get(view.status)
                    if handler is None:  # not in the table, or an annotation: only the position moves
                        runs[run_id] = replace(view, last_seq=seq)
                    else:
                        runs[run_id] = handler(view, event, seq, ts, worker_id)
                elif worker_id is not None:
                    wview = step_worker(workers.get(worker_id), event, worker_id, seq, ts)
                    if wview is not None:
                        workers[worker_id] = wview
            if rows:
                last = rows[-1][0]
    state.last_seq = last
    return state


@contextmanager
def gc_paused() -> Iterator[None]:
    """A fold allocates many long-lived objects and no reference cycles: left on, the cyclic GC rescans
    the growing state again and again (replaying 1M events took 1.3-1.6x as long).

    On the way out, what the pause allocated goes straight to the oldest generation (see _promote)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _promote()
            gc.enable()


def _promote() -> None:
    """Move every tracked object to the oldest generation without walking any of them.

    Re-enabled after a pause, the GC's next young collection would walk everything the pause made
    (after a 1M-event replay, 0.12 s for the 250k argv lists alone), then again as the middle
    generation, before the full collection that walks them anyway. freeze() + unfreeze() moves whole
    generations in O(1): a cycle made meanwhile is freed by the next full collection instead. Not done
    while something else holds objects frozen (the API server does): unfreeze() would release them."""
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def queue_of(runs: Iterable[RunView]) -> list[RunView]:
    """The queue projection: queued runs in claim order (priority high first, then oldest)."""
    return sorted((r for r in runs if r.status == t.QUEUED), key=lambda r: (-r.priority, r.num))
