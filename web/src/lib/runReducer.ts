/**
 * Folds one live event into a cached run view so the UI moves the moment the event arrives;
 * the debounced refetch that follows brings the authoritative view. Pure and total.
 */
import type { EventEnvelope, RunStatus, RunView } from "../api/types";
import { num, str, strList } from "./eventData";
import { isTerminal } from "./status";
import { assertNever } from "./assertNever";

export function patchRun(run: RunView, e: EventEnvelope): RunView {
  if (e.run_id !== run.run_id || e.seq <= run.last_seq) return run;
  const next: RunView = { ...run, last_seq: e.seq };
  switch (e.type) {
    case "submitted":
      return next;
    case "claimed":
      return {
        ...next,
        status: "claimed",
        attempt: num(e, "attempt") ?? run.attempt,
        worker_id: e.worker_id ?? run.worker_id,
        claimed_at: e.ts,
        lease_expires_at: str(e, "lease_expires_at") ?? run.lease_expires_at,
        blocked_by: null,
      };
    case "started":
      return {
        ...next,
        status: run.status === "cancelling" ? "cancelling" : "running",
        started_at: e.ts,
        pid: num(e, "pid") ?? run.pid,
        pgid: num(e, "pgid") ?? run.pgid,
        argv: strList(e, "argv") ?? run.argv,
      };
    case "heartbeat":
      return { ...next, lease_expires_at: str(e, "lease_expires_at") ?? run.lease_expires_at };
    case "progress":
      return { ...next, progress: { pct: num(e, "pct"), message: str(e, "message") } };
    case "artifact": {
      const name = str(e, "name");
      if (!name || run.artifacts.some((a) => a.name === name)) return next;
      return { ...next, artifacts: [...run.artifacts, { name, description: str(e, "description") }] };
    }
    case "result":
      return { ...next, result: (e.data["value"] ?? null) as RunView["result"] };
    case "cancel_requested":
      return isTerminal(run.status) ? next : { ...next, status: run.status === "queued" ? run.status : "cancelling" };
    case "exited": {
      const outcome = str(e, "outcome");
      const status: RunStatus =
        outcome === "succeeded" ? "succeeded" : outcome === "cancelled" ? "cancelled" : "failed";
      return {
        ...next,
        status,
        finished_at: e.ts,
        exit_code: num(e, "exit_code"),
        signal: (e.data["signal"] as number | string | null | undefined) ?? null,
        failure_reason: status !== "failed" ? null : outcome === "timed_out" ? "timeout" : "exit_code",
      };
    }
    case "reaped":
      return { ...next, status: "failed", finished_at: e.ts, failure_reason: str(e, "reason") ?? "lease_expired" };
    case "retry_scheduled":
      return { ...next, status: "queued", finished_at: null, attempt: num(e, "next_attempt") ?? run.attempt };
    case "cancelled":
      return { ...next, status: "cancelled", finished_at: e.ts };
    case "refused":
    case "worker_started":
    case "worker_stopped":
      return next;
    default:
      return assertNever(e.type, next);
  }
}
