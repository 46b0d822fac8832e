import { describe, expect, it } from "vitest";
import { patchRun } from "./runReducer";
import type { RunView } from "../api/types";
import { ev } from "../test/fakes";

const run: RunView = {
  run_id: "r-1", task_id: "long_task", params: {}, status: "queued", priority: 0, attempt: 0, max_attempts: 2,
  submitted_at: "2026-11-28T06:00:00Z", claimed_at: null, started_at: null, finished_at: null, worker_id: null,
  pid: null, pgid: null, lease_expires_at: null, exit_code: null, signal: null, failure_reason: null, progress: null,
  artifacts: [], result: null, last_seq: 1, blocked_by: ["no live worker"], retry_of: null, task_version: null, argv: null, error: null,
};

describe("patchRun", () => {
  it("folds a run's life from claim to success", () => {
    const steps = [
      ev("claimed", { seq: 2, run_id: "r-1", worker_id: "w-1", data: { attempt: 1, lease_expires_at: "L" } }),
      ev("started", { seq: 3, run_id: "r-1", worker_id: "w-1", data: { pid: 9, pgid: 9, argv: ["python3", "x.py"] } }),
      ev("progress", { seq: 4, run_id: "r-1", data: { pct: 50, message: "half" } }),
      ev("artifact", { seq: 5, run_id: "r-1", data: { name: "report.txt", description: "d" } }),
      ev("artifact", { seq: 6, run_id: "r-1", data: { name: "report.txt" } }),
      ev("result", { seq: 7, run_id: "r-1", data: { value: { ok: 1 } } }),
      ev("exited", { seq: 8, run_id: "r-1", data: { outcome: "succeeded", exit_code: 0 } }),
    ];
    const r = steps.reduce(patchRun, run);
    expect(r).toMatchObject({
      status: "succeeded", attempt: 1, worker_id: "w-1", pid: 9, argv: ["python3", "x.py"], blocked_by: null,
      progress: { pct: 50, message: "half" }, result: { ok: 1 }, exit_code: 0, last_seq: 8, failure_reason: null,
    });
    expect(r.artifacts).toEqual([{ name: "report.txt", description: "d" }]);
  });

  it("maps timeouts, reaping, retries and cancellation", () => {
    const claimed = patchRun(run, ev("claimed", { seq: 2, run_id: "r-1", worker_id: "w-1", data: { attempt: 1 } }));
    expect(patchRun(claimed, ev("exited", { seq: 3, run_id: "r-1", data: { outcome: "timed_out", exit_code: -9 } }))).toMatchObject({ status: "failed", failure_reason: "timeout" });
    expect(patchRun(claimed, ev("reaped", { seq: 3, run_id: "r-1", data: { reason: "worker_gone" } }))).toMatchObject({ status: "failed", failure_reason: "worker_gone" });
    expect(patchRun(claimed, ev("retry_scheduled", { seq: 3, run_id: "r-1", data: { next_attempt: 2 } }))).toMatchObject({ status: "queued", attempt: 2 });
    expect(patchRun(claimed, ev("cancel_requested", { seq: 3, run_id: "r-1" })).status).toBe("cancelling");
    expect(patchRun(run, ev("cancelled", { seq: 3, run_id: "r-1" })).status).toBe("cancelled");
  });

  it("ignores other runs' events and events it has already folded", () => {
    const other = ev("claimed", { seq: 9, run_id: "r-2" });
    expect(patchRun(run, other)).toBe(run);
    const old = ev("claimed", { seq: 1, run_id: "r-1" });
    expect(patchRun(run, old)).toBe(run);
  });
});
