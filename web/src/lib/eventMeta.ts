/** How each event type looks: severity, a one-line summary. One exhaustive switch. */
import type { EventEnvelope, EventType } from "../api/types";
import { num, str } from "./eventData";
import { assertNever } from "./assertNever";
import { formatDuration } from "./format";

export type Severity = "info" | "success" | "warning" | "error" | "muted";

export interface EventMeta {
  severity: Severity;
  summary: string;
  /** Shown as a marker on the timeline (claim and exit are the bar's edges; progress fills it). */
  marker: boolean;
}

export function eventMeta(e: EventEnvelope): EventMeta {
  const t: EventType = e.type;
  switch (t) {
    case "submitted":
      return { severity: "info", summary: `${str(e, "task_id") ?? "?"} submitted (priority ${num(e, "priority") ?? 0})`, marker: false };
    case "claimed":
      return { severity: "info", summary: `attempt ${num(e, "attempt") ?? "?"} claimed by ${e.worker_id ?? "?"}`, marker: false };
    case "started":
      return { severity: "info", summary: `started pid ${num(e, "pid") ?? "?"}`, marker: false };
    case "heartbeat":
      return { severity: "muted", summary: `lease until ${str(e, "lease_expires_at") ?? "?"}`, marker: false };
    case "progress": {
      const pct = num(e, "pct");
      const msg = str(e, "message");
      return { severity: "info", summary: [pct !== null ? `${Math.round(pct)}%` : null, msg].filter(Boolean).join(" ") || "progress", marker: false };
    }
    case "artifact":
      return { severity: "info", summary: `artifact ${str(e, "name") ?? "?"}`, marker: true };
    case "result":
      return { severity: "success", summary: "result recorded", marker: false };
    case "cancel_requested":
      return { severity: "warning", summary: `cancel requested${reason(e)}`, marker: true };
    case "exited": {
      const outcome = str(e, "outcome") ?? "?";
      const d = num(e, "duration_s");
      const sev: Severity = outcome === "succeeded" ? "success" : outcome === "cancelled" ? "warning" : "error";
      const code = num(e, "exit_code");
      const signal = e.data["signal"];
      const how = signal !== null && signal !== undefined ? `signal ${String(signal)}` : `code ${code ?? "–"}`;
      return { severity: sev, summary: `exited ${outcome} (${how}${d !== null ? `, ${formatDuration(d * 1000)}` : ""})`, marker: false };
    }
    case "reaped":
      return { severity: "error", summary: `reaped${reason(e)}`, marker: true };
    case "retry_scheduled":
      return { severity: "warning", summary: `retry ${num(e, "next_attempt") ?? "?"} scheduled`, marker: true };
    case "cancelled":
      return { severity: "warning", summary: `cancelled${reason(e)}`, marker: true };
    case "worker_started":
      return { severity: "info", summary: `worker up on ${str(e, "host") ?? "?"} ×${num(e, "concurrency") ?? "?"}`, marker: false };
    case "worker_stopped":
      return { severity: "muted", summary: `worker stopped${reason(e)}`, marker: false };
    case "refused":
      return { severity: "error", summary: `late ${str(e, "event_type") ?? "report"} refused (fence ${num(e, "fence") ?? "?"})`, marker: true };
    default:
      return assertNever(t, { severity: "muted", summary: String(t), marker: false });
  }
}

function reason(e: EventEnvelope): string {
  const r = str(e, "reason");
  return r ? `: ${r}` : "";
}
