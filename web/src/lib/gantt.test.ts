import { describe, expect, it } from "vitest";
import { buildGantt, laneKey } from "./gantt";
import { ev } from "../test/fakes";
import type { EventEnvelope } from "../api/types";

const at = (s: number) => new Date(Date.UTC(2026, 10, 28, 6, 0, s)).toISOString();
let seq = 0;
const e = (type: EventEnvelope["type"], s: number, over: Partial<EventEnvelope> = {}) => ev(type, { seq: ++seq, ts: at(s), ...over });
const W = "w-1";

describe("buildGantt", () => {
  it("gives each worker one lane per slot and packs attempts into the lowest free slot", () => {
    const m = buildGantt([
      e("worker_started", 0, { worker_id: W, data: { concurrency: 3 } }),
      e("submitted", 1, { run_id: "r-a", data: { task_id: "hello_world" } }),
      e("claimed", 2, { run_id: "r-a", worker_id: W, data: { attempt: 1 } }),
      e("claimed", 3, { run_id: "r-b", worker_id: W, data: { attempt: 1 } }),
      e("exited", 5, { run_id: "r-a", worker_id: W, data: { outcome: "succeeded" } }),
      e("claimed", 6, { run_id: "r-c", worker_id: W, data: { attempt: 1 } }),
    ]);
    expect(m.lanes.map((l) => l.key)).toEqual([laneKey(W, 0), laneKey(W, 1), laneKey(W, 2)]);
    const lane = Object.fromEntries(m.bars.map((b) => [b.runId, b.lane]));
    expect(lane).toEqual({ "r-a": laneKey(W, 0), "r-b": laneKey(W, 1), "r-c": laneKey(W, 0) });
    const a = m.bars.find((b) => b.runId === "r-a")!;
    expect(a.taskId).toBe("hello_world");
    expect(a.status).toBe("succeeded");
    expect(a.end! - a.start).toBe(3000);
    expect(m.bars.find((b) => b.runId === "r-b")!.end).toBeNull();
  });

  it("follows a bar through running, cancelling and cancelled", () => {
    const m = buildGantt([
      e("claimed", 0, { run_id: "r-a", worker_id: W }),
      e("started", 1, { run_id: "r-a", worker_id: W }),
      e("cancel_requested", 2, { run_id: "r-a" }),
    ]);
    expect(m.bars[0]!.status).toBe("cancelling");
    const done = buildGantt([
      e("claimed", 0, { run_id: "r-a", worker_id: W }),
      e("started", 1, { run_id: "r-a", worker_id: W }),
      e("exited", 3, { run_id: "r-a", worker_id: W, data: { outcome: "cancelled" } }),
    ]);
    expect(done.bars[0]!.status).toBe("cancelled");
  });

  it("draws a new bar per attempt and marks reaped, retry and refused late reports", () => {
    const m = buildGantt([
      e("worker_started", 0, { worker_id: W, data: { concurrency: 1 } }),
      e("claimed", 1, { run_id: "r-a", worker_id: W, data: { attempt: 1 } }),
      e("started", 2, { run_id: "r-a", worker_id: W }),
      e("reaped", 40, { run_id: "r-a", worker_id: W, data: { reason: "lease_expired" } }),
      e("retry_scheduled", 40, { run_id: "r-a", data: { next_attempt: 2 } }),
      e("refused", 41, { run_id: "r-a", worker_id: W, data: { fence: 1, event_type: "exited" } }),
      e("claimed", 45, { run_id: "r-a", worker_id: "w-2", data: { attempt: 2 } }),
    ]);
    expect(m.bars).toHaveLength(2);
    const [first, second] = m.bars;
    expect(first!.status).toBe("failed");
    expect(first!.markers.map((x) => x.type)).toEqual(["reaped", "retry_scheduled", "refused"]);
    expect(second!.attempt).toBe(2);
    expect(second!.lane).toBe(laneKey("w-2", 0));
    expect(m.lanes.map((l) => l.key)).toEqual([laneKey(W, 0), laneKey("w-2", 0)]);
  });

  it("opens a partial bar for a run claimed before the first event it has", () => {
    const m = buildGantt([e("progress", 10, { run_id: "r-old", worker_id: W, data: { pct: 50 } })]);
    expect(m.bars[0]).toMatchObject({ runId: "r-old", partial: true, status: "running", end: null });
  });

  it("adds an overflow lane rather than overlapping bars, and marks stopped workers", () => {
    const m = buildGantt([
      e("worker_started", 0, { worker_id: W, data: { concurrency: 1 } }),
      e("claimed", 1, { run_id: "r-a", worker_id: W }),
      e("claimed", 2, { run_id: "r-b", worker_id: W }),
      e("worker_stopped", 3, { worker_id: W }),
    ]);
    expect(m.lanes).toHaveLength(2);
    expect(m.lanes.every((l) => !l.alive)).toBe(true);
    expect(new Set(m.bars.map((b) => b.lane)).size).toBe(2);
  });

  it("keeps the latest progress as a fill, not a marker, and skips events without a time", () => {
    const m = buildGantt([
      e("claimed", 0, { run_id: "r-a", worker_id: W }),
      e("heartbeat", 5, { run_id: "r-a", worker_id: W }),
      e("progress", 6, { run_id: "r-a", worker_id: W, data: { pct: 40 } }),
      e("progress", 7, { run_id: "r-a", worker_id: W, data: { message: "no pct" } }),
      { ...e("started", 8, { run_id: "r-a", worker_id: W }), ts: "garbage" },
    ]);
    expect(m.bars[0]!.markers).toEqual([]);
    expect(m.bars[0]!.pct).toBe(40);
    expect(m.bars[0]!.status).toBe("claimed");
  });

  it("adds lanes for workers known from the API whose start is older than the events", () => {
    const m = buildGantt([e("claimed", 1, { run_id: "r-a", worker_id: W })], [
      { worker_id: W, concurrency: 2, alive: true },
      { worker_id: "w-0", concurrency: 1, alive: false },
    ]);
    expect(m.lanes.map((l) => [l.key, l.alive])).toEqual([
      [laneKey("w-0", 0), false],
      [laneKey(W, 0), true],
      [laneKey(W, 1), true],
    ]);
  });
});
