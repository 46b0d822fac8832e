/**
 * The one hook that owns the single EventSource on /api/events/stream. Mounted once, by
 * <EventStreamProvider>; everything else reads the cache, the event store, or the connection.
 */
import { useEffect, useMemo, useState, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { EventStreamClient, type ConnectionState, type EventSourceFactory } from "./EventStreamClient";
import { EventStore } from "./eventStore";
import { CacheSync } from "./cacheSync";
import { ConnectionContext, EventStoreContext, initialConnection } from "./context";
import { api } from "../api/endpoints";
import { withToken } from "../api/client";
import { getToken, subscribeToken } from "../api/token";

/** How many past events the timeline and feed start with. */
export const BACKFILL = 2000;

const browserFactory: EventSourceFactory = (url) => new EventSource(url);

export function useEventStream(factory: EventSourceFactory = browserFactory): {
  state: ConnectionState;
  store: EventStore;
} {
  const qc = useQueryClient();
  const store = useMemo(() => new EventStore(), []);
  const [state, setState] = useState<ConnectionState>(initialConnection);

  useEffect(() => {
    const sync = new CacheSync(qc);
    const client = new EventStreamClient({
      url: "/api/events/stream",
      factory,
      decorateUrl: withToken,
      resolveStart: async () => {
        const health = await api.health();
        const after = Math.max(0, health.last_seq - BACKFILL);
        const page = await api.events({ after, limit: BACKFILL });
        store.merge(page.items);
        const lastItem = page.items[page.items.length - 1];
        return Math.max(health.last_seq, page.last_seq ?? 0, lastItem?.seq ?? 0);
      },
      onEvent: (e) => {
        store.merge([e]);
        sync.apply(e);
      },
      // lastSeq moves with every event; re-render the app only when the connection itself changes.
      onState: (next) =>
        setState((prev) =>
          prev.status === next.status && prev.failures === next.failures && prev.retryAt === next.retryAt ? prev : next,
        ),
    });
    client.start();
    let token = getToken();
    const unsubscribe = subscribeToken(() => {
      if (getToken() === token) return;
      token = getToken();
      client.restart();
      void qc.invalidateQueries();
    });
    return () => {
      unsubscribe();
      client.stop();
    };
  }, [qc, store, factory]);

  return { state, store };
}

export function EventStreamProvider({ children, factory }: { children: ReactNode; factory?: EventSourceFactory }) {
  const { state, store } = useEventStream(factory);
  return (
    <EventStoreContext.Provider value={store}>
      <ConnectionContext.Provider value={state}>{children}</ConnectionContext.Provider>
    </EventStoreContext.Provider>
  );
}
