import type { RunProgress } from "../api/types";

export function ProgressBar({ progress, width = 100 }: { progress: RunProgress | null; width?: number }) {
  if (!progress || progress.pct === null) return progress?.message ? <span className="muted">{progress.message}</span> : null;
  const pct = Math.max(0, Math.min(100, progress.pct));
  return (
    <span title={`${pct.toFixed(0)}%${progress.message ? ` – ${progress.message}` : ""}`} className="row" style={{ gap: 6, flexWrap: "nowrap" }}>
      <span className="progress" style={{ width }} role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
        <span style={{ width: `${pct}%` }} />
      </span>
      <span className="muted" style={{ fontSize: 12 }}>{pct.toFixed(0)}%</span>
    </span>
  );
}
