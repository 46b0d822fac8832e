/** What is running right now, with progress: the "at a glance" list under the timeline. */
import { Link } from "react-router";
import { useRunsPages } from "../../api/queries";
import { StatusBadge } from "../../components/StatusBadge";
import { ProgressBar } from "../../components/ProgressBar";
import { formatDuration, paramsSummary, runDurationMs } from "../../lib/format";
import { useNow } from "../../lib/useNow";

export function ActiveRuns() {
  const running = useRunsPages({ status: "running" }).data?.pages[0]?.items ?? [];
  const cancelling = useRunsPages({ status: "cancelling" }).data?.pages[0]?.items ?? [];
  const now = useNow(1000);
  const runs = [...cancelling, ...running];
  return (
    <section style={{ marginTop: 16 }}>
      <h2>Running now ({runs.length})</h2>
      {runs.length === 0 ? (
        <p className="muted">Nothing is running.</p>
      ) : (
        <table className="data" data-testid="active-runs">
          <tbody>
            {runs.map((r) => (
              <tr key={r.run_id}>
                <td className="mono"><Link to={`/runs/${r.run_id}`}>{r.run_id}</Link></td>
                <td><StatusBadge status={r.status} /></td>
                <td>{r.task_id}</td>
                <td className="mono muted">{paramsSummary(r.params, 40)}</td>
                <td>{formatDuration(runDurationMs(r, now))}</td>
                <td><ProgressBar progress={r.progress} width={140} /></td>
                <td className="muted">{r.progress?.message ?? ""}</td>
                <td className="mono">{r.worker_id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
