/** Test doubles: a scriptable EventSource and a manual clock. */
import type { Clock, EventSourceLike, MessageLike } from "../stream/EventStreamClient";
import type { EventEnvelope, EventType } from "../api/types";

export class FakeEventSource implements EventSourceLike {
  onopen: ((ev: Event) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  closed = false;
  readonly listeners = new Map<string, ((m: MessageLike) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (m: MessageLike) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.onopen?.(new Event("open"));
  }
  error(): void {
    this.onerror?.(new Event("error"));
  }
  /** Sends one SSE frame as the server would: `event: <type>`, `id: <seq>`, `data: <json>`. */
  emit(e: EventEnvelope): void {
    for (const l of this.listeners.get(e.type) ?? []) l({ data: JSON.stringify(e), lastEventId: String(e.seq) });
  }
}

export class FakeClock implements Clock {
  t = 1_000_000;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.timers = this.timers.filter((x) => x.id !== h);
  };
  get pending(): number[] {
    return this.timers.map((x) => x.at - this.t);
  }
  advance(ms: number): void {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fn();
  }
}

let seqCounter = 0;
export function ev(type: EventType, over: Partial<EventEnvelope> = {}): EventEnvelope {
  seqCounter += 1;
  return {
    seq: over.seq ?? seqCounter,
    ts: over.ts ?? new Date(Date.UTC(2026, 10, 28, 6, 30, 0) + (over.seq ?? seqCounter) * 1000).toISOString(),
    type,
    run_id: over.run_id ?? null,
    worker_id: over.worker_id ?? null,
    data: over.data ?? {},
    hash: "h",
  };
}

export const flush = () => new Promise<void>((r) => setTimeout(r, 0));
