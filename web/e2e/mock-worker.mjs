// A simulated worker for the mock server: claims queued runs into free slots and plays them.
import { argvFor } from "./mock-state.mjs";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function startWorker(hub, tickMs = 100) {
  const w = hub.workers[0];
  const slots = [];
  let fence = 100;
  const artifacts = (hub.artifacts = new Map());

  const finish = (r, outcome, code, signal = null) => {
    const started = Date.parse(r.started_at ?? r.claimed_at);
    hub.append("exited", r.run_id, w.worker_id, { fence: r._fence, exit_code: code, signal, outcome, duration_s: (Date.now() - started) / 1000 });
    w.running = w.running.filter((id) => id !== r.run_id);
  };

  const play = (r) => {
    const steps = [];
    const p = r.params;
    if (r.task_id === "hello_world") {
      for (let i = 0; i < p.times; i++) steps.push([300, () => hub.write(r.run_id, "stdout", `\u001b[32mHello\u001b[0m, ${p.target}! (${i + 1}/${p.times})\n`)]);
      steps.push([200, () => finish(r, "succeeded", 0)]);
    } else if (r.task_id === "long_task") {
      for (let i = 1; i <= p.steps; i++) {
        steps.push([p.delay * 1000, () => {
          const pct = Math.round((10000 * i) / p.steps) / 100;
          hub.write(r.run_id, "stdout", `step ${i}/${p.steps} done\n::taskhub:: {"type": "progress", "pct": ${pct}, "message": "step ${i}/${p.steps}"}\n`);
          hub.append("progress", r.run_id, w.worker_id, { fence: r._fence, pct, message: `step ${i}/${p.steps}` });
        }]);
      }
      steps.push([50, () => {
        artifacts.set(`${r.run_id}/report.txt`, `steps: ${p.steps}\ndelay: ${p.delay}\n`);
        hub.append("artifact", r.run_id, w.worker_id, { fence: r._fence, name: "report.txt", description: "Summary of the steps run" });
        hub.append("result", r.run_id, w.worker_id, { fence: r._fence, value: { steps: p.steps } });
        finish(r, "succeeded", 0);
      }]);
    } else {
      steps.push([300, () => hub.write(r.run_id, "stderr", "\u001b[31mError:\u001b[0m deliberate failure\n")]);
      steps.push([100, () => finish(r, "failed", 3)]);
    }
    let i = 0;
    const next = () => {
      if (TERMINAL.has(r.status)) return;
      if (r.status === "cancelling") {
        hub.write(r.run_id, "stderr", "terminated by SIGTERM\n");
        return finish(r, "cancelled", -15, 15);
      }
      const step = steps[i++];
      if (!step) return;
      setTimeout(() => {
        step[1]();
        next();
      }, step[0]);
    };
    next();
  };

  const tick = () => {
    const queued = [...hub.runs.values()]
      .filter((r) => r.status === "queued")
      .sort((a, b) => b.priority - a.priority || a.submitted_at.localeCompare(b.submitted_at));
    for (const r of queued) {
      if (w.running.length >= w.concurrency) {
        r.blocked_by = [{ reason: "max_concurrency", message: "all worker slots are busy", runs: [...w.running] }];
        continue;
      }
      r._fence = ++fence;
      w.running.push(r.run_id);
      hub.append("claimed", r.run_id, w.worker_id, { attempt: r.attempt + 1, fence: r._fence, lease_expires_at: new Date(Date.now() + 30_000).toISOString() });
      setTimeout(() => {
        if (TERMINAL.has(r.status)) return;
        hub.append("started", r.run_id, w.worker_id, { fence: r._fence, pid: 6000 + fence, pgid: 6000 + fence, create_time: Date.now() / 1000, host: w.host, argv: argvFor(r.task_id, r.params) });
        play(r);
      }, 150);
    }
  };
  const timer = setInterval(tick, tickMs);
  return { stop: () => clearInterval(timer), slots };
}
