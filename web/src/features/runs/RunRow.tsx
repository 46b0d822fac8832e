import { Link } from "react-router";
import type { RunView } from "../../api/types";
import { StatusBadge } from "../../components/StatusBadge";
import { ProgressBar } from "../../components/ProgressBar";
import { formatDuration, formatRelative, paramsSummary, runDurationMs } from "../../lib/format";

interface Props {
  run: RunView;
  now: number;
  selected: boolean;
  onToggle: (runId: string) => void;
  fresh?: boolean;
}

export function RunRow({ run, now, selected, onToggle, fresh = false }: Props) {
  return (
    <tr className={fresh ? "fresh" : undefined} data-run={run.run_id} data-status={run.status}>
      <td>
        <input type="checkbox" aria-label={`select ${run.run_id}`} checked={selected} onChange={() => onToggle(run.run_id)} />
      </td>
      <td className="mono">
        <Link to={`/runs/${run.run_id}`}>{run.run_id}</Link>
      </td>
      <td>
        <StatusBadge status={run.status} />
      </td>
      <td>{run.task_id}</td>
      <td className="mono muted" title={JSON.stringify(run.params)}>{paramsSummary(run.params, 40)}</td>
      <td>
        {run.attempt}/{run.max_attempts}
      </td>
      <td title={run.submitted_at ?? ""}>{formatRelative(run.submitted_at, now)}</td>
      <td>{formatDuration(runDurationMs(run, now))}</td>
      <td>
        <ProgressBar progress={run.progress} width={70} />
      </td>
      <td className="mono">{run.worker_id ?? ""}</td>
    </tr>
  );
}
