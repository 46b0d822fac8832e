/** Runs waiting for a slot, shown above the lanes, each with why it waits. */
import { Link } from "react-router";
import { useRunsPages } from "../../api/queries";
import type { RunView } from "../../api/types";

const SHOWN = 12;

function why(run: RunView): string {
  return (run.blocked_by ?? []).map((b) => (typeof b === "string" ? b : b.message)).join("; ");
}

export function QueueStrip() {
  const q = useRunsPages({ status: "queued" });
  const runs = q.data?.pages[0]?.items ?? [];
  if (runs.length === 0) return null;
  return (
    <div className="row" style={{ margin: "0 0 8px", fontSize: 12 }} data-testid="queue-strip">
      <b>Queued{runs.length >= SHOWN ? ` (${SHOWN}+)` : ` (${runs.length})`}</b>
      {runs.slice(0, SHOWN).map((r) => (
        <Link key={r.run_id} to={`/runs/${r.run_id}`} className="badge" style={{ color: "var(--st-queued)" }} title={why(r) || "queued"}>
          {r.task_id} <span className="mono">{r.run_id}</span>
        </Link>
      ))}
    </div>
  );
}
