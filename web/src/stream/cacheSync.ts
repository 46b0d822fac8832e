/**
 * Feeds live events into the TanStack Query cache: patches cached runs at once (so bars and
 * badges move immediately) and schedules a throttled refetch of what the event made stale.
 */
import type { InfiniteData, QueryClient, QueryKey } from "@tanstack/react-query";
import type { EventEnvelope, RunPage, RunView } from "../api/types";
import { keys } from "../api/queries";
import { patchRun } from "../lib/runReducer";
import { assertNever } from "../lib/assertNever";

type Stale = "run" | "runs" | "workers" | "stats" | "taskRuns" | "runEvents";

/** Which cached queries an event makes stale. One exhaustive switch over event types. */
export function staleBy(e: EventEnvelope): Stale[] {
  switch (e.type) {
    case "submitted":
      return ["runs", "stats", "taskRuns"];
    case "claimed":
    case "exited":
    case "reaped":
    case "retry_scheduled":
      return ["run", "runs", "stats", "workers", "taskRuns"];
    case "cancelled":
    case "cancel_requested":
      return ["run", "runs", "stats", "taskRuns"];
    case "started":
    case "artifact":
    case "result":
      return ["run"];
    case "heartbeat":
    case "progress":
      return [];
    case "refused":
      return ["run"];
    case "worker_started":
    case "worker_stopped":
      return ["workers"];
    default:
      return assertNever(e.type, []);
  }
}

function patchPage(page: RunPage, e: EventEnvelope): RunPage {
  let changed = false;
  const items = page.items.map((r) => {
    if (r.run_id !== e.run_id) return r;
    const n = patchRun(r, e);
    changed ||= n !== r;
    return n;
  });
  return changed ? { ...page, items } : page;
}

export class CacheSync {
  private readonly qc: QueryClient;
  private readonly stale = new Map<string, QueryKey>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly throttleMs: number;

  constructor(qc: QueryClient, throttleMs = 400) {
    this.qc = qc;
    this.throttleMs = throttleMs;
  }

  apply(e: EventEnvelope): void {
    const id = e.run_id;
    if (id) {
      this.qc.setQueryData<RunView>(keys.run(id), (r) => (r ? patchRun(r, e) : r));
      this.qc.setQueryData<EventEnvelope[]>(keys.runEvents(id), (list) =>
        list && !list.some((x) => x.seq === e.seq) ? [...list, e] : list,
      );
      this.qc.setQueriesData<InfiniteData<RunPage>>({ queryKey: keys.runs() }, (data) =>
        data ? { ...data, pages: data.pages.map((p) => patchPage(p, e)) } : data,
      );
      this.qc.setQueriesData<RunPage>({ queryKey: ["task-runs"] }, (page) => (page ? patchPage(page, e) : page));
    }
    for (const s of staleBy(e)) {
      switch (s) {
        case "run":
          if (id) this.mark(keys.run(id));
          break;
        case "runEvents":
          if (id) this.mark(keys.runEvents(id));
          break;
        case "runs":
          this.mark(keys.runs());
          break;
        case "workers":
          this.mark(keys.workers);
          break;
        case "stats":
          this.mark(keys.stats);
          break;
        case "taskRuns":
          this.mark(["task-runs"]);
          break;
      }
    }
  }

  /** After a reconnect everything may be stale. */
  invalidateAll(): void {
    void this.qc.invalidateQueries();
  }

  private mark(key: QueryKey): void {
    this.stale.set(JSON.stringify(key), key);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.throttleMs);
  }

  private flush(): void {
    this.timer = null;
    const all = [...this.stale.values()];
    this.stale.clear();
    for (const queryKey of all) void this.qc.invalidateQueries({ queryKey });
  }
}
