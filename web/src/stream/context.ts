/** React contexts published by the stream provider. */
import { createContext, useContext, useSyncExternalStore } from "react";
import type { ConnectionState } from "./EventStreamClient";
import { EventStore } from "./eventStore";
import type { EventEnvelope } from "../api/types";

export const initialConnection: ConnectionState = {
  status: "idle",
  failures: 0,
  retryAt: null,
  lastSeq: null,
  duplicates: 0,
};

export const ConnectionContext = createContext<ConnectionState>(initialConnection);
export const EventStoreContext = createContext<EventStore>(new EventStore());

export function useConnection(): ConnectionState {
  return useContext(ConnectionContext);
}

/** The recent events (seq order), re-rendering at most once per frame. */
export function useRecentEvents(): readonly EventEnvelope[] {
  const store = useContext(EventStoreContext);
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
