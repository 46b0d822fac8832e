/** Counts by status across all runs (GET /api/stats), each a link to the filtered runs table. */
import { Link } from "react-router";
import { useStats } from "../../api/queries";
import { RUN_STATUSES } from "../../api/types";
import { statusColor } from "../../lib/status";

export function StatusSummary() {
  const { data } = useStats();
  if (!data) return null;
  return (
    <div className="row" style={{ gap: 14, marginBottom: 12 }}>
      {RUN_STATUSES.map((s) => (
        <Link key={s} to={`/runs?status=${s}`} className="card" style={{ padding: "6px 12px", minWidth: 90 }}>
          <div style={{ fontSize: 20, fontWeight: 700, color: statusColor(s) }}>{data.by_status[s] ?? 0}</div>
          <div className="muted" style={{ fontSize: 12 }}>{s}</div>
        </Link>
      ))}
    </div>
  );
}
