/**
 * Hand-written API types (SPEC sections 4-6), used until the backend's OpenAPI document is
 * saved to web/openapi.json and `npm run gen:api` produces src/api/schema.d.ts.
 * Keep names in step with the contract; the generated file will replace these one by one.
 */

export const EVENT_TYPES = [
  "submitted",
  "claimed",
  "started",
  "heartbeat",
  "progress",
  "artifact",
  "result",
  "cancel_requested",
  "exited",
  "reaped",
  "retry_scheduled",
  "cancelled",
  "worker_started",
  "worker_stopped",
  "refused",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** The envelope every interface shows (SPEC 4). `data` depends on `type`; read it with the helpers in lib/eventData. */
export interface EventEnvelope {
  seq: number;
  ts: string;
  type: EventType;
  run_id: string | null;
  worker_id: string | null;
  data: Record<string, unknown>;
  hash: string;
}

export const RUN_STATUSES = [
  "queued",
  "claimed",
  "running",
  "cancelling",
  "succeeded",
  "failed",
  "cancelled",
] as const;

export type RunStatus = (typeof RUN_STATUSES)[number];

export type FailureReason = "exit_code" | "timeout" | "lease_expired" | "worker_gone" | "spawn_error";

export interface RunProgress {
  pct: number | null;
  message: string | null;
}

export interface ArtifactRef {
  name: string;
  description: string | null;
}

export interface RunView {
  run_id: string;
  task_id: string;
  params: JsonObject;
  status: RunStatus;
  priority: number;
  attempt: number;
  max_attempts: number;
  submitted_at: string | null;
  claimed_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  worker_id: string | null;
  pid: number | null;
  pgid: number | null;
  lease_expires_at: string | null;
  exit_code: number | null;
  signal: number | string | null;
  failure_reason: FailureReason | string | null;
  progress: RunProgress | null;
  artifacts: ArtifactRef[];
  result: JsonValue;
  last_seq: number;
  /** While queued: why it has not started. Objects from the API; plain strings are accepted too. */
  blocked_by?: (Blocker | string)[] | null;
  retry_of: string | null;
  task_version: string | null;
  argv: string[] | null;
  error: string | null;
  /** Also shown by the API (SPEC says "at least" the fields above). */
  timeout_s?: number | null;
  not_before?: string | null;
  host?: string | null;
  outcome?: string | null;
  cancel_reason?: string | null;
}

/** One reason a queued run has not started (reason: max_concurrency, not_before, no_live_worker, runs_ahead). */
export interface Blocker {
  reason: string;
  message: string;
  runs?: string[] | null;
  count?: number | null;
  until?: string | null;
}

export interface RunPage {
  items: RunView[];
  next_cursor: string | null;
}

export interface WorkerView {
  worker_id: string;
  pid: number | null;
  host: string | null;
  concurrency: number;
  started_at: string | null;
  alive: boolean;
  running: string[];
  stopped_at?: string | null;
}

export interface WorkerList {
  items: WorkerView[];
}

export interface TaskView {
  task_id: string;
  name: string;
  description: string | null;
  params_schema: JsonSchema;
  max_concurrency: number | null;
  timeout_s: number | null;
  max_attempts: number;
}

export interface TaskLoadError {
  file: string;
  error: string;
}

export interface TaskList {
  items: TaskView[];
  errors: TaskLoadError[];
}

export interface EventPage {
  items: EventEnvelope[];
  last_seq: number;
}

export interface Stats {
  by_status: Partial<Record<RunStatus, number>>;
  by_task: Record<string, Partial<Record<RunStatus, number>>>;
}

export interface Health {
  status: string;
  last_seq: number;
  sqlite_version?: string;
}

export interface SubmitBody {
  task_id: string;
  params: JsonObject;
  priority?: number;
  idempotency_key?: string;
  not_before?: string;
}

export interface PreviewResult {
  argv: string[];
}

/** Error body, e.g. `{"status_code": 422, "detail": "...", "field": "times"}`. */
export interface ApiErrorBody {
  status_code?: number;
  detail?: string;
  field?: string | null;
}

/** The subset of JSON Schema the submit form understands (what msgspec and pydantic emit). */
export interface JsonSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: JsonValue;
  enum?: JsonValue[];
  const?: JsonValue;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
  definitions?: Record<string, JsonSchema>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
}
