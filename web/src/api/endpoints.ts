/** One function per REST endpoint (SPEC 6). */
import { getJson, postJson, query, request } from "./client";
import type {
  EventEnvelope,
  EventPage,
  Health,
  PreviewResult,
  RunPage,
  RunStatus,
  RunView,
  Stats,
  SubmitBody,
  TaskList,
  WorkerList,
} from "./types";

const enc = encodeURIComponent;

export interface RunFilter {
  status?: RunStatus | "" | undefined;
  task_id?: string | undefined;
  limit?: number | undefined;
  cursor?: string | null | undefined;
}

export const api = {
  health: (signal?: AbortSignal) => getJson<Health>("/api/health", signal),
  tasks: (signal?: AbortSignal) => getJson<TaskList>("/api/tasks", signal),
  preview: (taskId: string, params: unknown) => postJson<PreviewResult>(`/api/tasks/${enc(taskId)}/preview`, { params }),
  runs: (f: RunFilter, signal?: AbortSignal) =>
    getJson<RunPage>(`/api/runs${query({ status: f.status, task_id: f.task_id, limit: f.limit, cursor: f.cursor })}`, signal),
  run: (runId: string, signal?: AbortSignal) => getJson<RunView>(`/api/runs/${enc(runId)}`, signal),
  submit: (body: SubmitBody) => postJson<RunView>("/api/runs", body),
  cancel: (runId: string) => postJson<RunView>(`/api/runs/${enc(runId)}/cancel`, {}),
  retry: (runId: string) => postJson<RunView>(`/api/runs/${enc(runId)}/retry`, {}),
  runEvents: async (runId: string, signal?: AbortSignal): Promise<EventEnvelope[]> => {
    const body = await getJson<EventEnvelope[] | { items: EventEnvelope[] }>(`/api/runs/${enc(runId)}/events`, signal);
    return Array.isArray(body) ? body : body.items;
  },
  events: (p: { after?: number; limit?: number; run_id?: string; type?: string }, signal?: AbortSignal) =>
    getJson<EventPage>(`/api/events${query(p)}`, signal),
  workers: (signal?: AbortSignal) => getJson<WorkerList>("/api/workers", signal),
  stats: (signal?: AbortSignal) => getJson<Stats>("/api/stats", signal),
  /** Reads log bytes; a negative offset counts from the end. Returns the text and the total size. */
  log: async (runId: string, stream: LogStream, offset: number, limit?: number) => {
    const res = await request(`/api/runs/${enc(runId)}/logs/${stream}${query({ offset, limit })}`, {
      headers: { Accept: "text/plain" },
    });
    const text = await res.text();
    const header = (name: string) => {
      const n = Number(res.headers.get(name) ?? NaN);
      return Number.isFinite(n) ? n : null;
    };
    return { text, size: header("X-Log-Size"), start: header("X-Log-Offset") };
  },
  /** The whole log as bytes, read in chunks (the API caps one read). */
  logBlob: async (runId: string, stream: LogStream): Promise<Blob> => {
    const parts: ArrayBuffer[] = [];
    let offset = 0;
    for (let i = 0; i < 1000; i++) {
      const res = await request(`/api/runs/${enc(runId)}/logs/${stream}${query({ offset, limit: LOG_CHUNK })}`, {
        headers: { Accept: "text/plain" },
      });
      const buf = await res.arrayBuffer();
      parts.push(buf);
      offset += buf.byteLength;
      const size = Number(res.headers.get("X-Log-Size") ?? 0);
      if (buf.byteLength === 0 || offset >= size) break;
    }
    return new Blob(parts, { type: "text/plain" });
  },
  logStreamUrl: (runId: string, stream: LogStream, offset: number) =>
    `/api/runs/${enc(runId)}/logs/${stream}/stream${query({ offset })}`,
  artifactUrl: (runId: string, name: string) => `/api/runs/${enc(runId)}/artifacts/${enc(name)}`,
};

export type LogStream = "stdout" | "stderr";

/** Bytes per read when downloading a whole log (the API allows up to 8 MiB). */
export const LOG_CHUNK = 4 << 20;
