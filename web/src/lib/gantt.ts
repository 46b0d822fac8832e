/**
 * The timeline's model, derived from events alone: one lane per worker slot, one bar per
 * attempt (claim to exit), markers for the events that matter. Pure, so it is unit-tested.
 */
import type { EventEnvelope, EventType } from "../api/types";
import { num, str, tsMs } from "./eventData";
import { eventMeta } from "./eventMeta";

export type BarStatus = "claimed" | "running" | "cancelling" | "succeeded" | "failed" | "cancelled";

export interface Lane {
  key: string;
  workerId: string;
  slot: number;
  /** False once the worker stopped. */
  alive: boolean;
}

export interface Marker {
  seq: number;
  ts: number;
  type: EventType;
  label: string;
}

export interface Bar {
  key: string;
  runId: string;
  taskId: string | null;
  attempt: number;
  lane: string;
  start: number;
  /** null while the attempt is still going. */
  end: number | null;
  status: BarStatus;
  markers: Marker[];
  /** Latest progress percentage reported, if any. */
  pct: number | null;
  /** The claim happened before the first event we have; start is approximate. */
  partial: boolean;
}

export interface GanttModel {
  lanes: Lane[];
  bars: Bar[];
  /** Earliest event time, for the zoom-out limit. */
  firstTs: number | null;
}

export const laneKey = (workerId: string, slot: number) => `${workerId}#${slot}`;

/** A worker known from GET /api/workers, so its lanes show even when its start is older than our events. */
export interface KnownWorker {
  worker_id: string;
  concurrency: number;
  alive: boolean;
}

export function buildGantt(events: readonly EventEnvelope[], known: readonly KnownWorker[] = []): GanttModel {
  const taskByRun = new Map<string, string>();
  const concurrency = new Map<string, number>();
  const stopped = new Set<string>();
  /** For each worker, the bar occupying each slot (index = slot). */
  const occupants = new Map<string, (Bar | null)[]>();
  const open = new Map<string, Bar>();
  const latest = new Map<string, Bar>();
  const bars: Bar[] = [];
  let firstTs: number | null = null;

  const slotsOf = (w: string) => {
    let s = occupants.get(w);
    if (!s) {
      s = [];
      occupants.set(w, s);
    }
    return s;
  };

  const openBar = (runId: string, workerId: string, ts: number, attempt: number, partial: boolean): Bar => {
    const slots = slotsOf(workerId);
    let slot = slots.findIndex((b) => b === null || (b.end !== null && b.end <= ts));
    if (slot < 0) slot = slots.length;
    const bar: Bar = {
      key: `${runId}@${attempt}#${bars.length}`,
      runId,
      taskId: taskByRun.get(runId) ?? null,
      attempt,
      lane: laneKey(workerId, slot),
      start: ts,
      end: null,
      status: "claimed",
      markers: [],
      pct: null,
      partial,
    };
    slots[slot] = bar;
    bars.push(bar);
    open.set(runId, bar);
    latest.set(runId, bar);
    stopped.delete(workerId);
    return bar;
  };

  const close = (bar: Bar, ts: number, status: BarStatus) => {
    bar.end = Math.max(ts, bar.start);
    bar.status = status;
    open.delete(bar.runId);
  };

  for (const e of events) {
    const ts = tsMs(e.ts);
    if (ts === null) continue;
    firstTs = firstTs === null ? ts : Math.min(firstTs, ts);
    const runId = e.run_id;
    if (e.type === "worker_started" && e.worker_id) {
      concurrency.set(e.worker_id, num(e, "concurrency") ?? 1);
      stopped.delete(e.worker_id);
      slotsOf(e.worker_id);
      continue;
    }
    if (e.type === "worker_stopped" && e.worker_id) {
      stopped.add(e.worker_id);
      continue;
    }
    if (!runId) continue;
    if (e.type === "submitted") {
      const t = str(e, "task_id");
      if (t) taskByRun.set(runId, t);
      continue;
    }
    let bar = open.get(runId);
    if (e.type === "claimed") {
      if (bar) close(bar, ts, "failed");
      if (e.worker_id) bar = openBar(runId, e.worker_id, ts, num(e, "attempt") ?? 1, false);
    } else if (!bar && e.worker_id && isAttemptEvent(e.type)) {
      // The claim is older than our window: open a bar from here.
      bar = openBar(runId, e.worker_id, ts, 1, true);
      bar.status = "running";
    }
    bar ??= latest.get(runId);
    if (!bar) continue;
    if (eventMeta(e).marker) bar.markers.push({ seq: e.seq, ts, type: e.type, label: eventMeta(e).summary });
    if (bar.end !== null) continue;
    switch (e.type) {
      case "started":
        bar.status = bar.status === "cancelling" ? "cancelling" : "running";
        break;
      case "cancel_requested":
        bar.status = "cancelling";
        break;
      case "progress":
        bar.pct = num(e, "pct") ?? bar.pct;
        break;
      case "exited": {
        const outcome = str(e, "outcome");
        close(bar, ts, outcome === "succeeded" ? "succeeded" : outcome === "cancelled" ? "cancelled" : "failed");
        break;
      }
      case "reaped":
        close(bar, ts, "failed");
        break;
      case "cancelled":
        close(bar, ts, "cancelled");
        break;
      default:
        break;
    }
  }

  for (const w of known) {
    if (!concurrency.has(w.worker_id)) concurrency.set(w.worker_id, w.concurrency);
    // The API knows liveness now (a worker killed with -9 sends no worker_stopped).
    if (w.alive) stopped.delete(w.worker_id);
    else stopped.add(w.worker_id);
    slotsOf(w.worker_id);
  }
  const lanes: Lane[] = [];
  for (const w of [...occupants.keys()].sort()) {
    const n = Math.max(concurrency.get(w) ?? 1, occupants.get(w)?.length ?? 0);
    for (let slot = 0; slot < n; slot++) lanes.push({ key: laneKey(w, slot), workerId: w, slot, alive: !stopped.has(w) });
  }
  return { lanes, bars, firstTs };
}

function isAttemptEvent(t: EventType): boolean {
  return t === "started" || t === "heartbeat" || t === "progress" || t === "exited" || t === "artifact";
}
