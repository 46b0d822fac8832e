/**
 * The logic behind the single live connection to `/api/events/stream`, free of React and of the
 * browser so it can be tested with a fake EventSource and a fake clock.
 *
 * - resumes after a drop from the last seq it delivered (`?after=`), so nothing is missed;
 * - drops any frame whose seq it has already delivered, so nothing is seen twice;
 * - reconnects with exponential backoff while the server is down, and resets it once open.
 */
import { EVENT_TYPES, isEventType, type EventEnvelope } from "../api/types";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";

export interface MessageLike {
  data: string;
  lastEventId?: string;
}

export interface EventSourceLike {
  onopen: ((ev: Event) => void) | null;
  onerror: ((ev: Event) => void) | null;
  addEventListener(type: string, listener: (ev: MessageLike) => void): void;
  close(): void;
}

export type EventSourceFactory = (url: string) => EventSourceLike;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
};

export type ConnectionStatus = "idle" | "connecting" | "live" | "reconnecting" | "stopped";

export interface ConnectionState {
  status: ConnectionStatus;
  /** Consecutive failures since the last successful open. */
  failures: number;
  /** When the next attempt is due (clock ms), while reconnecting. */
  retryAt: number | null;
  lastSeq: number | null;
  /** Frames dropped because their seq was already delivered. */
  duplicates: number;
}

export interface EventStreamOptions {
  /** Base URL, e.g. `/api/events/stream`. */
  url: string;
  factory: EventSourceFactory;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** Adds auth (e.g. `?token=`) to the URL before connecting. */
  decorateUrl?: (url: string) => string;
  /** Resolves where to start when no seq is known yet (e.g. the log's current last_seq). */
  resolveStart?: () => Promise<number | null>;
  onEvent: (event: EventEnvelope) => void;
  onState?: (state: ConnectionState) => void;
}

export class EventStreamClient {
  private readonly opts: EventStreamOptions;
  private readonly clock: Clock;
  private source: EventSourceLike | null = null;
  private timer: unknown = null;
  private generation = 0;
  private state: ConnectionState = { status: "idle", failures: 0, retryAt: null, lastSeq: null, duplicates: 0 };

  constructor(opts: EventStreamOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
  }

  get snapshot(): ConnectionState {
    return this.state;
  }

  get lastSeq(): number | null {
    return this.state.lastSeq;
  }

  /** Starts following; `afterSeq` pins the resume point (otherwise resolveStart, else "from now"). */
  start(afterSeq?: number): void {
    if (afterSeq !== undefined) this.update({ lastSeq: afterSeq });
    this.generation += 1;
    void this.connect(this.generation);
  }

  stop(): void {
    this.generation += 1;
    this.teardown();
    this.update({ status: "stopped", retryAt: null });
  }

  /** Closes and reconnects at once (e.g. after the token changed), keeping the resume point. */
  restart(): void {
    this.teardown();
    this.update({ failures: 0 });
    this.start();
  }

  buildUrl(): string {
    const seq = this.state.lastSeq;
    const base = seq === null ? this.opts.url : `${this.opts.url}${this.opts.url.includes("?") ? "&" : "?"}after=${seq}`;
    return this.opts.decorateUrl ? this.opts.decorateUrl(base) : base;
  }

  /** Handles one frame; public so tests (and the provider) can feed frames directly. */
  handleFrame(type: string, msg: MessageLike): void {
    let event: EventEnvelope;
    try {
      event = JSON.parse(msg.data) as EventEnvelope;
    } catch {
      return;
    }
    if (typeof event.seq !== "number") return;
    if (!isEventType(event.type)) event = { ...event, type: type as EventEnvelope["type"] };
    const last = this.state.lastSeq;
    if (last !== null && event.seq <= last) {
      this.update({ duplicates: this.state.duplicates + 1 });
      return;
    }
    this.update({ lastSeq: event.seq });
    this.opts.onEvent(event);
  }

  private async connect(gen: number): Promise<void> {
    this.teardown();
    this.update({ status: this.state.failures > 0 ? "reconnecting" : "connecting", retryAt: null });
    if (this.state.lastSeq === null && this.opts.resolveStart) {
      try {
        const start = await this.opts.resolveStart();
        if (gen !== this.generation) return;
        if (start !== null && this.state.lastSeq === null) this.update({ lastSeq: start });
      } catch {
        if (gen === this.generation) this.fail(gen);
        return;
      }
    }
    if (gen !== this.generation) return;
    const es = this.opts.factory(this.buildUrl());
    this.source = es;
    es.onopen = () => {
      if (this.source !== es) return;
      this.update({ status: "live", failures: 0, retryAt: null });
    };
    es.onerror = () => {
      if (this.source !== es) return;
      this.fail(gen);
    };
    for (const type of EVENT_TYPES) {
      es.addEventListener(type, (msg) => {
        if (this.source === es) this.handleFrame(type, msg);
      });
    }
  }

  private fail(gen: number): void {
    this.teardown();
    const failures = this.state.failures + 1;
    const delay = backoffDelay(failures, this.opts.backoff ?? DEFAULT_BACKOFF);
    this.update({ status: "reconnecting", failures, retryAt: this.clock.now() + delay });
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      if (gen === this.generation) void this.connect(gen);
    }, delay);
  }

  private teardown(): void {
    if (this.timer !== null) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.source) {
      const es = this.source;
      this.source = null;
      es.onopen = null;
      es.onerror = null;
      es.close();
    }
  }

  private update(patch: Partial<ConnectionState>): void {
    this.state = { ...this.state, ...patch };
    this.opts.onState?.(this.state);
  }
}
