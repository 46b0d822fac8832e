#!/usr/bin/env node
// A tiny stand-in for the TaskHub API (SPEC 6) with canned tasks, a simulated worker, SSE and
// the built SPA (web/dist) with an index.html fallback. `node e2e/mock-server.mjs [port]`.
// MOCK_TOKEN=secret makes every /api request need `Authorization: Bearer secret` or `?token=`.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { MockHub, ParamsError, TASKS, TASK_ERRORS, argvFor, validate } from "./mock-state.mjs";
import { startWorker } from "./mock-worker.mjs";

const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist");
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };

export function createMockServer({ token = process.env.MOCK_TOKEN } = {}) {
  const hub = new MockHub();
  const worker = startWorker(hub);
  const sockets = new Set();

  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { "Content-Type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res, status, detail, field) => send(res, status, { status_code: status, detail, ...(field !== undefined ? { field } : {}) });
  const readBody = (req) => new Promise((resolve) => {
    let s = "";
    req.on("data", (c) => (s += c));
    req.on("end", () => { try { resolve(s ? JSON.parse(s) : {}); } catch { resolve(undefined); } });
  });
  const sse = (req, res) => {
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" });
    res.write(": connected\n\n");
    const ka = setInterval(() => res.write(": keepalive\n\n"), 15_000);
    req.on("close", () => clearInterval(ka));
    return ka;
  };

  const routes = [
    ["GET", /^\/api\/health$/, (q, res) => send(res, 200, { status: "ok", last_seq: hub.events.length, sqlite_version: "mock" })],
    ["GET", /^\/api\/tasks$/, (q, res) => send(res, 200, { items: TASKS, errors: TASK_ERRORS })],
    ["POST", /^\/api\/tasks\/([^/]+)\/preview$/, async (q, res, [id], req) => {
      const task = TASKS.find((t) => t.task_id === id);
      if (!task) return fail(res, 404, `unknown task ${id}`);
      const body = await readBody(req);
      try { send(res, 200, { argv: argvFor(id, validate(task, body?.params ?? {})) }); } catch (e) { fail(res, 422, e.message, e.field); }
    }],
    ["GET", /^\/api\/runs$/, (q, res) => {
      let list = [...hub.runs.values()].reverse();
      if (q.get("status")) list = list.filter((r) => r.status === q.get("status"));
      if (q.get("task_id")) list = list.filter((r) => r.task_id === q.get("task_id"));
      const start = Number(q.get("cursor") ?? 0);
      const limit = Number(q.get("limit") ?? 50);
      const items = list.slice(start, start + limit);
      send(res, 200, { items, next_cursor: start + limit < list.length ? String(start + limit) : null });
    }],
    ["POST", /^\/api\/runs$/, async (q, res, _m, req) => {
      const body = await readBody(req);
      if (!body || typeof body !== "object") return fail(res, 400, "malformed body");
      const task = TASKS.find((t) => t.task_id === body.task_id);
      if (!task) return fail(res, 404, `unknown task ${body.task_id}`, "task_id");
      try { send(res, 201, hub.submit(task, validate(task, body.params ?? {}), body.priority ?? 0)); } catch (e) {
        if (e instanceof ParamsError) fail(res, 422, e.message, e.field); else throw e;
      }
    }],
    ["GET", /^\/api\/runs\/([^/]+)$/, (q, res, [id]) => (hub.runs.has(id) ? send(res, 200, hub.runs.get(id)) : fail(res, 404, `unknown run ${id}`))],
    ["POST", /^\/api\/runs\/([^/]+)\/cancel$/, (q, res, [id]) => {
      const r = hub.runs.get(id);
      if (!r) return fail(res, 404, `unknown run ${id}`);
      if (TERMINAL.has(r.status)) return fail(res, 409, `run ${id} already ${r.status}`);
      if (r.status === "queued") hub.append("cancelled", id, null, { reason: "user" });
      else if (r.status !== "cancelling") hub.append("cancel_requested", id, null, { reason: "user" });
      send(res, 202, r);
    }],
    ["POST", /^\/api\/runs\/([^/]+)\/retry$/, (q, res, [id]) => {
      const r = hub.runs.get(id);
      if (!r) return fail(res, 404, `unknown run ${id}`);
      send(res, 201, hub.submit(TASKS.find((t) => t.task_id === r.task_id), r.params, r.priority, { retry_of: id }));
    }],
    ["GET", /^\/api\/runs\/([^/]+)\/events$/, (q, res, [id]) => send(res, 200, { items: hub.events.filter((e) => e.run_id === id), last_seq: hub.events.length })],
    ["GET", /^\/api\/runs\/([^/]+)\/logs\/(stdout|stderr)$/, (q, res, [id, stream]) => {
      const buf = hub.logs.get(id)?.[stream];
      if (!buf) return fail(res, 404, `unknown run ${id}`);
      let off = Number(q.get("offset") ?? 0);
      if (off < 0) off = Math.max(0, buf.length + off);
      const limit = q.has("limit") ? Number(q.get("limit")) : buf.length;
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "X-Log-Size": String(buf.length) });
      res.end(buf.subarray(off, off + limit));
    }],
    ["GET", /^\/api\/runs\/([^/]+)\/logs\/(stdout|stderr)\/stream$/, (q, res, [id, stream], req) => {
      if (!hub.logs.has(id)) return fail(res, 404, `unknown run ${id}`);
      let sent = Number(q.get("offset") ?? 0);
      sse(req, res);
      const pump = (runId) => {
        if (runId !== id) return;
        const buf = hub.logs.get(id)[stream];
        if (buf.length > sent) {
          res.write(`event: log\ndata: ${JSON.stringify({ offset: sent, text: buf.subarray(sent).toString() })}\n\n`);
          sent = buf.length;
        }
      };
      const onEvent = (e) => {
        if (e.run_id === id && TERMINAL.has(hub.runs.get(id).status)) {
          pump(id);
          res.write("event: end\ndata: {}\n\n");
          cleanup();
          res.end();
        }
      };
      const cleanup = () => { hub.logListeners.delete(pump); hub.listeners.delete(onEvent); };
      hub.logListeners.add(pump);
      hub.listeners.add(onEvent);
      req.on("close", cleanup);
      pump(id);
      if (TERMINAL.has(hub.runs.get(id).status)) onEvent({ run_id: id });
    }],
    ["GET", /^\/api\/runs\/([^/]+)\/artifacts$/, (q, res, [id]) => send(res, 200, { items: hub.runs.get(id)?.artifacts ?? [] })],
    ["GET", /^\/api\/runs\/([^/]+)\/artifacts\/(.+)$/, (q, res, [id, name]) => {
      const body = hub.artifacts.get(`${id}/${decodeURIComponent(name)}`);
      if (body === undefined) return fail(res, 404, "no such artifact");
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(body);
    }],
    ["GET", /^\/api\/events$/, (q, res) => {
      const after = Number(q.get("after") ?? 0);
      const limit = Number(q.get("limit") ?? 1000);
      const items = hub.events.filter((e) => e.seq > after && (!q.get("run_id") || e.run_id === q.get("run_id")) && (!q.get("type") || q.get("type").split(",").includes(e.type))).slice(0, limit);
      send(res, 200, { items, last_seq: hub.events.length });
    }],
    ["GET", /^\/api\/events\/stream$/, (q, res, _m, req) => {
      const after = Number(q.get("after") ?? req.headers["last-event-id"] ?? hub.events.length);
      sse(req, res);
      const out = (e) => res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
      for (const e of hub.events) if (e.seq > after) out(e);
      hub.listeners.add(out);
      req.on("close", () => hub.listeners.delete(out));
    }],
    ["GET", /^\/api\/workers$/, (q, res) => send(res, 200, { items: hub.workers })],
    ["GET", /^\/api\/stats$/, (q, res) => {
      const by_status = {};
      const by_task = {};
      for (const r of hub.runs.values()) {
        by_status[r.status] = (by_status[r.status] ?? 0) + 1;
        (by_task[r.task_id] ??= {})[r.status] = (by_task[r.task_id][r.status] ?? 0) + 1;
      }
      send(res, 200, { by_status, by_task });
    }],
  ];

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname.startsWith("/api/")) {
      if (token && req.headers.authorization !== `Bearer ${token}` && url.searchParams.get("token") !== token) return fail(res, 401, "token required");
      if (req.method === "POST" && !(req.headers["content-type"] ?? "").startsWith("application/json")) return fail(res, 415, "application/json required");
      for (const [method, re, handler] of routes) {
        const m = re.exec(url.pathname);
        if (m && method === req.method) return handler(url.searchParams, res, m.slice(1), req);
      }
      return fail(res, 404, "no such endpoint");
    }
    let file = path.join(DIST, path.normalize(url.pathname));
    if (!file.startsWith(DIST) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(DIST, "index.html");
    if (!fs.existsSync(file)) return fail(res, 503, "web/dist not built: npm run build");
    res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    fs.createReadStream(file).pipe(res);
  });
  server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  const close = () => { worker.stop(); for (const s of sockets) s.destroy(); server.close(); };
  return { server, hub, close };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
  const { server, close } = createMockServer();
  server.listen(port, "127.0.0.1", () => console.log(`mock TaskHub on http://127.0.0.1:${port}`));
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { close(); process.exit(0); });
}
