// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { act, StrictMode, useContext } from "react";
import { createRoot, type Root } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { EventStreamProvider } from "./useEventStream";
import { ConnectionContext, EventStoreContext } from "./context";
import type { ConnectionState } from "./EventStreamClient";
import type { EventStore } from "./eventStore";
import { keys } from "../api/queries";
import type { RunView } from "../api/types";
import { ev, FakeEventSource } from "../test/fakes";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

const seen: { conn?: ConnectionState; store?: EventStore } = {};
function Probe() {
  seen.conn = useContext(ConnectionContext);
  seen.store = useContext(EventStoreContext);
  return null;
}

const json = (body: unknown) => new Response(JSON.stringify(body), { headers: { "Content-Type": "application/json" } });

describe("useEventStream (mounted)", () => {
  let root: Root;
  let sources: FakeEventSource[];
  let qc: QueryClient;

  beforeEach(() => {
    sources = [];
    qc = new QueryClient();
    vi.stubGlobal(
      "fetch",
      vi.fn(async (url: string) => {
        if (url.startsWith("/api/health")) return json({ status: "ok", last_seq: 2 });
        if (url.startsWith("/api/events")) return json({ items: [ev("submitted", { seq: 1, run_id: "r-1" }), ev("worker_started", { seq: 2 })], last_seq: 2 });
        throw new Error(`unexpected ${url}`);
      }),
    );
    root = createRoot(document.createElement("div"));
  });
  afterEach(() => {
    act(() => root.unmount());
    vi.unstubAllGlobals();
  });

  const mount = async () => {
    const factory = (url: string) => {
      const s = new FakeEventSource(url);
      sources.push(s);
      return s;
    };
    await act(async () => {
      root.render(
        <StrictMode>
          <QueryClientProvider client={qc}>
            <EventStreamProvider factory={factory}>
              <Probe />
            </EventStreamProvider>
          </QueryClientProvider>
        </StrictMode>,
      );
    });
    await act(async () => {
      await new Promise((r) => setTimeout(r, 0));
    });
  };

  it("keeps exactly one open EventSource, resuming after the back-filled events", async () => {
    await mount();
    const open = sources.filter((s) => !s.closed);
    expect(open).toHaveLength(1);
    expect(open[0]!.url).toBe("/api/events/stream?after=2");
    expect(seen.store!.getSnapshot().map((e) => e.seq)).toEqual([1, 2]);
  });

  it("publishes the connection state and feeds events into the query cache and the store", async () => {
    await mount();
    const es = sources.find((s) => !s.closed)!;
    qc.setQueryData<RunView>(keys.run("r-1"), { run_id: "r-1", status: "queued", last_seq: 1, artifacts: [] } as unknown as RunView);
    act(() => es.open());
    expect(seen.conn!.status).toBe("live");
    await act(async () => {
      es.emit(ev("claimed", { seq: 3, run_id: "r-1", worker_id: "w-1", data: { attempt: 1 } }));
      es.emit(ev("claimed", { seq: 3, run_id: "r-1", worker_id: "w-1", data: { attempt: 1 } }));
      await new Promise((r) => setTimeout(r, 20));
    });
    expect(qc.getQueryData<RunView>(keys.run("r-1"))?.status).toBe("claimed");
    expect(seen.store!.getSnapshot().map((e) => e.seq)).toEqual([1, 2, 3]);
    act(() => es.error());
    expect(seen.conn!.status).toBe("reconnecting");
  });

  it("closes its EventSource on unmount", async () => {
    await mount();
    act(() => root.unmount());
    expect(sources.every((s) => s.closed)).toBe(true);
    root = createRoot(document.createElement("div"));
  });
});
