/** Status, timings, attempt, worker, pid, exit code or failure reason, blocked_by; cancel and retry. */
import { Link, useNavigate } from "react-router";
import { BlockedBy } from "./BlockedBy";
import type { RunView } from "../../api/types";
import { StatusBadge } from "../../components/StatusBadge";
import { ProgressBar } from "../../components/ProgressBar";
import { ErrorBox } from "../../components/Feedback";
import { canCancel, canRetry, isActive } from "../../lib/status";
import { formatDateTime, formatDuration, formatRelative, runDurationMs } from "../../lib/format";
import { useNow } from "../../lib/useNow";
import { useRunActions } from "../runs/useRunActions";

export function RunHeader({ run }: { run: RunView }) {
  const now = useNow(1000);
  const navigate = useNavigate();
  const { cancel, retry } = useRunActions();
  const outcome =
    run.status === "failed"
      ? `failed: ${run.failure_reason ?? "?"}${run.exit_code !== null ? ` (exit ${run.exit_code})` : ""}${run.signal !== null ? ` signal ${run.signal}` : ""}`
      : run.exit_code !== null
        ? `exit ${run.exit_code}`
        : null;
  return (
    <header className="card">
      <div className="spread">
        <div className="row">
          <h1 style={{ margin: 0 }} className="mono">{run.run_id}</h1>
          <StatusBadge status={run.status} />
          <Link to={`/runs?task_id=${run.task_id}`}>{run.task_id}</Link>
          <ProgressBar progress={run.progress} width={160} />
        </div>
        <div className="row">
          <button className="danger" disabled={!canCancel(run.status) || cancel.isPending} onClick={() => cancel.mutate(run.run_id)}>
            Cancel
          </button>
          <button
            disabled={!canRetry(run.status) || retry.isPending}
            onClick={() => retry.mutate(run.run_id, { onSuccess: (r) => navigate(`/runs/${r.run_id}`) })}
          >
            Retry
          </button>
        </div>
      </div>
      {run.progress?.message && <p className="muted" style={{ margin: "6px 0 0" }}>{run.progress.message}</p>}
      <dl className="kv" style={{ marginTop: 10 }}>
        <dt>Submitted</dt>
        <dd>{formatDateTime(run.submitted_at)}</dd>
        <dt>Started</dt>
        <dd>{formatDateTime(run.started_at ?? run.claimed_at)}</dd>
        <dt>Finished</dt>
        <dd>{formatDateTime(run.finished_at)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(runDurationMs(run, now))}</dd>
        <dt>Attempt</dt>
        <dd>
          {run.attempt} of {run.max_attempts}
          {run.retry_of && (
            <>
              {" "}· retry of <Link to={`/runs/${run.retry_of}`}>{run.retry_of}</Link>
            </>
          )}
        </dd>
        <dt>Worker</dt>
        <dd className="mono">
          {run.worker_id ?? "–"} {run.host && `on ${run.host}`} {run.pid !== null && `pid ${run.pid}`} {run.pgid !== null && `pgid ${run.pgid}`}
        </dd>
        {isActive(run.status) && run.lease_expires_at && (
          <>
            <dt>Lease</dt>
            <dd title={run.lease_expires_at}>expires {formatRelative(run.lease_expires_at, now)}</dd>
          </>
        )}
        <dt>Priority</dt>
        <dd>{run.priority}</dd>
        {outcome && (
          <>
            <dt>Outcome</dt>
            <dd className={run.status === "failed" ? "sev-error" : ""}>{outcome}</dd>
          </>
        )}
        {run.status === "queued" && run.blocked_by && run.blocked_by.length > 0 && (
          <>
            <dt>Waiting for</dt>
            <dd>
              <BlockedBy blockers={run.blocked_by} />
            </dd>
          </>
        )}
        {run.cancel_reason && (
          <>
            <dt>Cancel reason</dt>
            <dd>{run.cancel_reason}</dd>
          </>
        )}
        {run.error && (
          <>
            <dt>Error</dt>
            <dd className="sev-error">{run.error}</dd>
          </>
        )}
      </dl>
      <ErrorBox error={cancel.error ?? retry.error} />
    </header>
  );
}
