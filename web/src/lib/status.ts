/** Run statuses: colours (CSS variables), labels, and which are final. */
import type { RunStatus } from "../api/types";

export const TERMINAL: ReadonlySet<RunStatus> = new Set(["succeeded", "failed", "cancelled"]);

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL.has(status);
}

export function isActive(status: RunStatus): boolean {
  return status === "claimed" || status === "running" || status === "cancelling";
}

/** The CSS variable that colours a status; defined for both themes in styles.css. */
export function statusColor(status: RunStatus | string): string {
  switch (status) {
    case "queued":
      return "var(--st-queued)";
    case "claimed":
      return "var(--st-claimed)";
    case "running":
      return "var(--st-running)";
    case "cancelling":
      return "var(--st-cancelling)";
    case "succeeded":
      return "var(--st-succeeded)";
    case "failed":
      return "var(--st-failed)";
    case "cancelled":
      return "var(--st-cancelled)";
    default:
      return "var(--st-unknown)";
  }
}

export function canCancel(status: RunStatus): boolean {
  return status === "queued" || status === "claimed" || status === "running";
}

export function canRetry(status: RunStatus): boolean {
  return isTerminal(status);
}
