/** Live workers: slots used, current runs, started time, alive or not. */
import { Link } from "react-router";
import { useWorkers } from "../../api/queries";
import { ErrorBox, Loading } from "../../components/Feedback";
import { formatDateTime, formatRelative } from "../../lib/format";
import { useNow } from "../../lib/useNow";

function Slots({ used, total }: { used: number; total: number }) {
  return (
    <span className="strip" title={`${used} of ${total} slots busy`} aria-label={`${used}/${total} slots`}>
      {Array.from({ length: Math.max(total, used) }, (_, i) => (
        <span key={i} style={{ width: 10, height: 14, borderRadius: 2, background: i < used ? "var(--st-running)" : "var(--bg-sunk)", border: "1px solid var(--border)" }} />
      ))}
    </span>
  );
}

export function WorkersTable() {
  const q = useWorkers();
  const now = useNow(5000);
  if (q.isPending) return <Loading what="Loading workers" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const workers = [...q.data.items].sort((a, b) => Number(b.alive) - Number(a.alive) || a.worker_id.localeCompare(b.worker_id));
  if (workers.length === 0) return <div className="card muted">No workers. Start one with <code>taskhub worker</code>.</div>;
  return (
    <table className="data" data-testid="workers-table">
      <thead>
        <tr>
          <th>Worker</th>
          <th>State</th>
          <th>Host / pid</th>
          <th>Slots</th>
          <th>Running</th>
          <th>Started</th>
        </tr>
      </thead>
      <tbody>
        {workers.map((w) => (
          <tr key={w.worker_id} style={{ opacity: w.alive ? 1 : 0.6 }}>
            <td className="mono">{w.worker_id}</td>
            <td>
              <span className={`badge${w.alive ? " live" : ""}`} style={{ color: w.alive ? "var(--ok)" : "var(--fg-muted)" }}>
                <span className="dot" />
                {w.alive ? "alive" : "gone"}
              </span>
            </td>
            <td className="mono">
              {w.host ?? "?"} / {w.pid ?? "?"}
            </td>
            <td>
              <Slots used={w.running.length} total={w.concurrency} /> <span className="muted">{w.running.length}/{w.concurrency}</span>
            </td>
            <td>
              {w.running.map((id) => (
                <Link key={id} to={`/runs/${id}`} className="mono" style={{ marginRight: 8 }}>
                  {id}
                </Link>
              ))}
            </td>
            <td title={formatDateTime(w.started_at)}>
              {formatRelative(w.started_at, now)}
              {w.stopped_at && <div className="muted" style={{ fontSize: 12 }}>stopped {formatRelative(w.stopped_at, now)}</div>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
