/** One task: description, limits, and a strip of its recent runs coloured by status. */
import { Link } from "react-router";
import type { TaskView } from "../../api/types";
import { useTaskRuns } from "../../api/queries";
import { statusColor } from "../../lib/status";
import { paramsSummary } from "../../lib/format";

export function TaskCard({ task }: { task: TaskView }) {
  const runs = useTaskRuns(task.task_id).data?.items ?? [];
  return (
    <article className="card" data-task={task.task_id}>
      <div className="spread">
        <h2 style={{ margin: 0 }}>{task.name}</h2>
        <Link to={`/submit?task=${encodeURIComponent(task.task_id)}`} className="btn">Run…</Link>
      </div>
      <div className="mono muted">{task.task_id}</div>
      {task.description && <p>{task.description}</p>}
      <dl className="kv">
        <dt>Concurrency</dt>
        <dd>{task.max_concurrency ?? "unlimited"}</dd>
        <dt>Timeout</dt>
        <dd>{task.timeout_s !== null ? `${task.timeout_s}s` : "none"}</dd>
        <dt>Attempts</dt>
        <dd>{task.max_attempts}</dd>
      </dl>
      <div className="row" style={{ marginTop: 10 }}>
        <span className="muted" style={{ fontSize: 12 }}>recent</span>
        <div className="strip" aria-label="recent runs">
          {[...runs].reverse().map((r) => (
            <Link key={r.run_id} to={`/runs/${r.run_id}`} title={`${r.run_id} ${r.status} ${paramsSummary(r.params)}`} style={{ background: statusColor(r.status) }} />
          ))}
          {runs.length === 0 && <span className="muted" style={{ fontSize: 12 }}>no runs yet</span>}
        </div>
        <Link to={`/runs?task_id=${encodeURIComponent(task.task_id)}`} style={{ fontSize: 12 }}>all runs →</Link>
      </div>
    </article>
  );
}
