import { describe, expect, it } from "vitest";
import { EventStreamClient, type ConnectionState } from "./EventStreamClient";
import { backoffDelay, DEFAULT_BACKOFF } from "./backoff";
import { EVENT_TYPES, type EventEnvelope } from "../api/types";
import { ev, FakeClock, FakeEventSource, flush } from "../test/fakes";

const NO_JITTER = { ...DEFAULT_BACKOFF, random: () => 1 };

function setup(opts: { start?: () => Promise<number | null> } = {}) {
  const sources: FakeEventSource[] = [];
  const clock = new FakeClock();
  const got: EventEnvelope[] = [];
  const states: ConnectionState[] = [];
  const client = new EventStreamClient({
    url: "/api/events/stream",
    factory: (url) => {
      const s = new FakeEventSource(url);
      sources.push(s);
      return s;
    },
    clock,
    backoff: NO_JITTER,
    resolveStart: opts.start,
    onEvent: (e) => got.push(e),
    onState: (s) => states.push(s),
  });
  const last = () => sources[sources.length - 1]!;
  return { client, sources, clock, got, states, last };
}

describe("EventStreamClient", () => {
  it("starts after the seq that resolveStart gives and listens for every event type", async () => {
    const { client, last } = setup({ start: async () => 41 });
    client.start();
    await flush();
    expect(last().url).toBe("/api/events/stream?after=41");
    expect([...last().listeners.keys()].sort()).toEqual([...EVENT_TYPES].sort());
  });

  it("goes live on open and delivers events in order", async () => {
    const { client, last, got } = setup();
    client.start(0);
    await flush();
    last().open();
    expect(client.snapshot.status).toBe("live");
    last().emit(ev("submitted", { seq: 1, run_id: "r-1" }));
    last().emit(ev("claimed", { seq: 2, run_id: "r-1" }));
    expect(got.map((e) => e.seq)).toEqual([1, 2]);
    expect(client.lastSeq).toBe(2);
  });

  it("drops frames whose seq it already delivered", async () => {
    const { client, last, got } = setup();
    client.start(0);
    await flush();
    const a = ev("submitted", { seq: 5 });
    last().emit(a);
    last().emit(a);
    last().emit(ev("claimed", { seq: 4 }));
    last().emit(ev("started", { seq: 6 }));
    expect(got.map((e) => e.seq)).toEqual([5, 6]);
    expect(client.snapshot.duplicates).toBe(2);
  });

  it("resumes from the last delivered seq after a drop, without duplicates", async () => {
    const { client, sources, last, clock, got } = setup();
    client.start(10);
    await flush();
    last().open();
    last().emit(ev("submitted", { seq: 11 }));
    last().emit(ev("claimed", { seq: 12 }));
    last().error();
    expect(sources[0]!.closed).toBe(true);
    expect(client.snapshot.status).toBe("reconnecting");
    clock.advance(500);
    await flush();
    expect(sources).toHaveLength(2);
    expect(last().url).toBe("/api/events/stream?after=12");
    // The server replays 12 (overlap) then 13.
    last().open();
    last().emit(ev("claimed", { seq: 12 }));
    last().emit(ev("started", { seq: 13 }));
    expect(got.map((e) => e.seq)).toEqual([11, 12, 13]);
  });

  it("backs off exponentially while the server is down, capped, and resets once open", async () => {
    const { client, sources, last, clock } = setup();
    client.start(0);
    await flush();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      last().error();
      delays.push(client.snapshot.retryAt! - clock.now());
      clock.advance(client.snapshot.retryAt! - clock.now());
      await flush();
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(sources).toHaveLength(9);
    last().open();
    expect(client.snapshot.failures).toBe(0);
    last().error();
    expect(client.snapshot.retryAt! - clock.now()).toBe(500);
  });

  it("does not reconnect before the backoff delay has passed", async () => {
    const { client, sources, last, clock } = setup();
    client.start(0);
    await flush();
    last().error();
    last().error(); // a second error from the closed source is ignored
    clock.advance(499);
    await flush();
    expect(sources).toHaveLength(1);
    clock.advance(1);
    await flush();
    expect(sources).toHaveLength(2);
  });

  it("retries resolveStart with backoff when the API is down", async () => {
    let calls = 0;
    const { client, sources, clock } = setup({
      start: async () => {
        calls += 1;
        if (calls < 3) throw new Error("down");
        return 7;
      },
    });
    client.start();
    await flush();
    expect(sources).toHaveLength(0);
    clock.advance(500);
    await flush();
    clock.advance(1000);
    await flush();
    expect(calls).toBe(3);
    expect(sources[0]!.url).toBe("/api/events/stream?after=7");
  });

  it("ignores frames from a superseded source and stops for good", async () => {
    const { client, sources, last, clock, got } = setup();
    client.start(0);
    await flush();
    const first = last();
    first.error();
    clock.advance(500);
    await flush();
    first.emit(ev("submitted", { seq: 1 }));
    expect(got).toHaveLength(0);
    client.stop();
    expect(last().closed).toBe(true);
    clock.advance(60_000);
    await flush();
    expect(sources).toHaveLength(2);
    expect(client.snapshot.status).toBe("stopped");
  });

  it("adds auth to the URL", async () => {
    const sources: FakeEventSource[] = [];
    const client = new EventStreamClient({
      url: "/api/events/stream",
      factory: (u) => (sources.push(new FakeEventSource(u)), sources[sources.length - 1]!),
      clock: new FakeClock(),
      decorateUrl: (u) => `${u}&token=t`,
      onEvent: () => undefined,
    });
    client.start(3);
    await flush();
    expect(sources[0]!.url).toBe("/api/events/stream?after=3&token=t");
  });

  it("ignores malformed frames", async () => {
    const { client, last, got } = setup();
    client.start(0);
    await flush();
    for (const l of last().listeners.get("claimed")!) l({ data: "not json" });
    for (const l of last().listeners.get("claimed")!) l({ data: "{}" });
    expect(got).toHaveLength(0);
  });
});

describe("backoffDelay", () => {
  it("spreads jitter over half to the full delay", () => {
    expect(backoffDelay(3, { ...DEFAULT_BACKOFF, random: () => 0 })).toBe(1000);
    expect(backoffDelay(3, { ...DEFAULT_BACKOFF, random: () => 0.999999 })).toBe(2000);
    expect(backoffDelay(50, NO_JITTER)).toBe(30_000);
  });
});
