"""A supervisor's lease is the claim's own (what the reaper sees), not counted from when it got it."""

from __future__ import annotations

import pytest

from taskhub.events.clock import iso
from taskhub.projections.runs import RunView
from taskhub.runtime.supervisor import RENEW_BEFORE_START_S, lease_deadline

NOW = 1_800_000_000.0  # wall clock
MONO = 5_000.0  # monotonic clock, same moment
LEASE_S = 30.0


def claimed(lease_expires_at: str | None) -> RunView:
    return RunView(
        run_id="r-1", task_id="t", params={}, status="claimed", num=1, fence=2, lease_expires_at=lease_expires_at
    )


def test_a_fresh_claim_has_its_whole_lease() -> None:
    assert lease_deadline(claimed(iso(NOW + LEASE_S)), LEASE_S, NOW, MONO) == pytest.approx(MONO + LEASE_S)


def test_a_claim_seen_only_after_its_lease_ran_out_renews_before_it_starts() -> None:
    """The worker was stopped between its claim's commit and reading the result: by then the reaper
    may have taken the run, and the supervisor must ask (heartbeat) before starting anything."""
    deadline = lease_deadline(claimed(iso(NOW - 10)), LEASE_S, NOW, MONO)
    assert deadline == pytest.approx(MONO - 10)
    assert deadline - RENEW_BEFORE_START_S < MONO  # what RunSupervisor._run checks


@pytest.mark.parametrize("expires", [iso(NOW + 3_600), None, "not a time"])
def test_never_more_than_a_lease_from_now(expires: str | None) -> None:
    """A wall clock set back (or a view without a lease) cannot stretch it."""
    assert lease_deadline(claimed(expires), LEASE_S, NOW, MONO) == pytest.approx(MONO + LEASE_S)
