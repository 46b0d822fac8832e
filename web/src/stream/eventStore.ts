/**
 * The recent events, in seq order, for the timeline and the events feed. A bounded buffer with
 * a subscription that `useSyncExternalStore` reads; merging is idempotent by seq.
 */
import type { EventEnvelope } from "../api/types";

export class EventStore {
  private events: EventEnvelope[] = [];
  private readonly listeners = new Set<() => void>();
  private readonly capacity: number;
  private pending = false;

  constructor(capacity = 5000) {
    this.capacity = capacity;
  }

  getSnapshot = (): readonly EventEnvelope[] => this.events;

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Adds events (any order, duplicates ignored) and keeps the newest `capacity`. */
  merge(incoming: readonly EventEnvelope[]): void {
    if (incoming.length === 0) return;
    const last = this.events[this.events.length - 1];
    let next: EventEnvelope[];
    if (last && incoming.every((e, i) => e.seq > (i === 0 ? last.seq : incoming[i - 1]!.seq))) {
      next = this.events.concat(incoming);
    } else {
      const bySeq = new Map<number, EventEnvelope>();
      for (const e of this.events) bySeq.set(e.seq, e);
      for (const e of incoming) bySeq.set(e.seq, e);
      next = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    }
    if (next.length > this.capacity) next = next.slice(next.length - this.capacity);
    this.events = next;
    this.schedule();
  }

  /** Notifies at most once per animation frame so a burst renders once. */
  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    const flush = () => {
      this.pending = false;
      for (const l of this.listeners) l();
    };
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(flush);
    else queueMicrotask(flush);
  }
}
