// In-memory TaskHub for the mock server: an event log, run views folded from it, and a
// simulated worker that claims, runs, logs and finishes runs. Dev/test aid only.

const iso = (t = Date.now()) => new Date(t).toISOString().replace("Z", "000Z");

export const TASKS = [
  {
    task_id: "hello_world", name: "Hello Task", description: "Greets a target.",
    params_schema: { title: "Params", type: "object", properties: { target: { type: "string" }, times: { type: "integer", default: 1 } }, required: ["target"], additionalProperties: false },
    max_concurrency: null, timeout_s: null, max_attempts: 1,
  },
  {
    task_id: "long_task", name: "Long task", description: "Works through steps, reporting progress, then writes report.txt as an artifact.",
    params_schema: { title: "Params", type: "object", properties: { steps: { description: "How many steps to run", type: "integer", minimum: 1, maximum: 100000, default: 10 }, delay: { description: "Seconds to wait per step", type: "number", minimum: 0, maximum: 3600, default: 0.5 } }, required: [], additionalProperties: false },
    max_concurrency: null, timeout_s: null, max_attempts: 1,
  },
  {
    task_id: "fail_task", name: "Failing task", description: "Exits 3 after printing to stderr.",
    params_schema: { title: "Params", type: "object", properties: {}, required: [], additionalProperties: false },
    max_concurrency: 1, timeout_s: 60, max_attempts: 2,
  },
];
export const TASK_ERRORS = [{ file: "tasks/broken.py", error: "SyntaxError: invalid syntax (broken.py, line 3)" }];

export class ParamsError extends Error {
  constructor(detail, field) { super(detail); this.field = field; }
}

export function validate(task, params) {
  if (params === null || typeof params !== "object" || Array.isArray(params)) throw new ParamsError("params must be a JSON object", null);
  const props = task.params_schema.properties;
  for (const k of Object.keys(params)) if (!(k in props)) throw new ParamsError(`Object contains unknown field \`${k}\``, k);
  for (const k of task.params_schema.required) if (!(k in params)) throw new ParamsError(`Object missing required field \`${k}\``, k);
  const out = {};
  for (const [k, s] of Object.entries(props)) {
    const v = k in params ? params[k] : s.default;
    const bad = (t) => new ParamsError(`Expected \`${t}\`, got \`${typeof v === "string" ? "str" : typeof v}\` - at \`$.${k}\``, k);
    if (s.type === "integer" && !Number.isInteger(v)) throw bad("int");
    if (s.type === "number" && typeof v !== "number") throw bad("float");
    if (s.type === "string" && typeof v !== "string") throw bad("str");
    if (s.minimum !== undefined && v < s.minimum) throw new ParamsError(`Expected \`${s.type}\` >= ${s.minimum} - at \`$.${k}\``, k);
    out[k] = v;
  }
  return out;
}

export function argvFor(taskId, p) {
  if (taskId === "hello_world") return ["python3", "tasks/scripts/hello.py", "--target", p.target, "--times", String(p.times)];
  if (taskId === "long_task") return ["python3", "tasks/scripts/long_task.py", "--steps", String(p.steps), "--delay", String(p.delay)];
  return ["python3", "tasks/scripts/fail.py"];
}

export class MockHub {
  constructor() {
    this.events = [];
    this.runs = new Map();
    this.logs = new Map(); // run_id -> {stdout: Buffer, stderr: Buffer}
    this.listeners = new Set(); // (event) => void
    this.logListeners = new Set(); // (runId) => void
    this.n = 0;
    this.workers = [{ worker_id: "w-1", pid: 4242, host: "localhost", concurrency: 2, started_at: iso(Date.now() - 600_000), alive: true, running: [] }];
    this.seed();
  }

  append(type, run_id, worker_id, data, ts = Date.now()) {
    const e = { seq: this.events.length + 1, ts: iso(ts), type, run_id, worker_id, data, hash: Math.random().toString(16).slice(2, 18) };
    this.events.push(e);
    if (run_id && this.runs.has(run_id)) this.fold(this.runs.get(run_id), e);
    for (const l of this.listeners) l(e);
    return e;
  }

  fold(r, e) {
    r.last_seq = e.seq;
    const d = e.data;
    switch (e.type) {
      case "claimed": Object.assign(r, { status: "claimed", attempt: d.attempt, worker_id: e.worker_id, claimed_at: e.ts, lease_expires_at: d.lease_expires_at, blocked_by: null }); break;
      case "started": Object.assign(r, { status: r.status === "cancelling" ? "cancelling" : "running", started_at: e.ts, pid: d.pid, pgid: d.pgid, argv: d.argv }); break;
      case "progress": r.progress = { pct: d.pct ?? null, message: d.message ?? null }; break;
      case "artifact": r.artifacts.push({ name: d.name, description: d.description ?? null }); break;
      case "result": r.result = d.value; break;
      case "cancel_requested": if (r.status !== "queued") r.status = "cancelling"; break;
      case "exited": Object.assign(r, { status: d.outcome === "timed_out" ? "failed" : d.outcome, exit_code: d.exit_code, finished_at: e.ts, failure_reason: d.outcome === "failed" ? "exit_code" : d.outcome === "timed_out" ? "timeout" : null }); break;
      case "reaped": Object.assign(r, { status: "failed", finished_at: e.ts, failure_reason: d.reason }); break;
      case "cancelled": Object.assign(r, { status: "cancelled", finished_at: e.ts }); break;
      default: break;
    }
  }

  submit(task, params, priority = 0, extra = {}, ts = Date.now()) {
    const run_id = `r-${(++this.n).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const r = {
      run_id, task_id: task.task_id, params, status: "queued", priority, attempt: 0, max_attempts: task.max_attempts,
      submitted_at: iso(ts), claimed_at: null, started_at: null, finished_at: null, worker_id: null, pid: null, pgid: null,
      lease_expires_at: null, exit_code: null, signal: null, failure_reason: null, progress: null, artifacts: [], result: null,
      last_seq: 0, blocked_by: [{ reason: "runs_ahead", message: "waiting for a free worker slot", count: 0 }], retry_of: null, task_version: "sha256:" + task.task_id.length.toString(16).repeat(8), argv: null, error: null, ...extra,
    };
    this.runs.set(run_id, r);
    this.logs.set(run_id, { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) });
    this.append("submitted", run_id, null, { task_id: task.task_id, params, priority, max_attempts: task.max_attempts, timeout_s: task.timeout_s, not_before: null, idempotency_key: null, task_version: r.task_version }, ts);
    return r;
  }

  write(runId, stream, text) {
    const l = this.logs.get(runId);
    l[stream] = Buffer.concat([l[stream], Buffer.from(text)]);
    for (const f of this.logListeners) f(runId);
  }

  seed() {
    const t0 = Date.now() - 8 * 60_000;
    this.append("worker_started", null, "w-1", { pid: 4242, host: "localhost", concurrency: 2 }, t0);
    const a = this.submit(TASKS[0], { target: "seed", times: 2 }, 0, {}, t0 + 1000);
    this.append("claimed", a.run_id, "w-1", { attempt: 1, fence: 1, lease_expires_at: iso(t0 + 31_000) }, t0 + 1500);
    this.append("started", a.run_id, "w-1", { fence: 1, pid: 5001, pgid: 5001, argv: argvFor("hello_world", a.params) }, t0 + 1600);
    this.write(a.run_id, "stdout", "Hello, seed!\nHello, seed!\n");
    this.append("exited", a.run_id, "w-1", { fence: 1, exit_code: 0, signal: null, outcome: "succeeded", duration_s: 40 }, t0 + 41_600);
    const b = this.submit(TASKS[2], {}, 0, {}, t0 + 20_000);
    this.append("claimed", b.run_id, "w-1", { attempt: 1, fence: 2, lease_expires_at: iso(t0 + 51_000) }, t0 + 20_500);
    this.append("started", b.run_id, "w-1", { fence: 2, pid: 5002, pgid: 5002, argv: argvFor("fail_task", {}) }, t0 + 20_600);
    this.write(b.run_id, "stderr", "\u001b[31mError:\u001b[0m something broke\n");
    this.append("reaped", b.run_id, "w-1", { fence: 2, reason: "lease_expired", killed_pids: [5002] }, t0 + 90_000);
    this.append("refused", b.run_id, "w-1", { fence: 2, event_type: "exited" }, t0 + 95_000);
    // A run with a large log (~8 MB), for the tail-first, virtualised log view.
    const c = this.submit(TASKS[0], { target: "big", times: 150000 }, 0, {}, t0 + 100_000);
    this.append("claimed", c.run_id, "w-1", { attempt: 1, fence: 3, lease_expires_at: iso(t0 + 131_000) }, t0 + 100_500);
    this.append("started", c.run_id, "w-1", { fence: 3, pid: 5003, pgid: 5003, argv: argvFor("hello_world", c.params) }, t0 + 100_600);
    const lines = [];
    for (let i = 1; i <= 150000; i++) lines.push(`${i % 1000 === 0 ? "\u001b[33mWARN\u001b[0m" : "\u001b[32mINFO\u001b[0m"} line ${i}: Hello, big! ${"·".repeat(i % 17)}`);
    this.write(c.run_id, "stdout", lines.join("\n") + "\n");
    this.append("exited", c.run_id, "w-1", { fence: 3, exit_code: 0, signal: null, outcome: "succeeded", duration_s: 60 }, t0 + 160_600);
  }
}
