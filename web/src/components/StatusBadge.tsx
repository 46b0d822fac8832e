import type { RunStatus } from "../api/types";
import { isActive, statusColor } from "../lib/status";

export function StatusBadge({ status }: { status: RunStatus | string }) {
  const live = isActive(status as RunStatus);
  return (
    <span className={`badge${live ? " live" : ""}`} style={{ color: statusColor(status) }} data-status={status}>
      <span className="dot" />
      {status}
    </span>
  );
}
