#!/usr/bin/env node
// Browser test of the TaskHub UI with Debian's chromium via playwright-core (never a downloaded
// browser). TASKHUB_URL (default http://127.0.0.1:8000) must serve the API and the built SPA.
// Screenshots go to TASKHUB_SCREENSHOTS (default web/test-output/). Exits non-zero on failure.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BASE = (process.env.TASKHUB_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const OUT = path.resolve(process.env.TASKHUB_SCREENSHOTS ?? path.join(path.dirname(fileURLToPath(import.meta.url)), "../test-output"));
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const TOKEN = process.env.TASKHUB_TOKEN ?? "";
// Deadlines, not sleeps: generous because CI machines can be heavily loaded.
const T = { short: 30_000, run: 90_000 };
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message.split("\n").slice(0, 4).join(" | ") : e}`);
  }
}

const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
const runIdFromUrl = (url) => /\/runs\/(r-[A-Za-z0-9]+)/.exec(url)?.[1] ?? null;
const headerStatus = (page) => page.locator("header [data-status]").first();

async function submitViaForm(page, taskId, params) {
  await page.goto(`${BASE}/submit?task=${taskId}`);
  await page.locator("#task").waitFor({ timeout: T.short });
  for (const [k, v] of Object.entries(params)) await page.fill(`#param-${k}`, String(v));
  await page.getByTestId("argv-preview").waitFor({ timeout: T.short });
  await page.getByRole("button", { name: "Submit run" }).click();
  await page.waitForURL(/\/runs\/r-[A-Za-z0-9]+/, { timeout: T.short });
  return runIdFromUrl(page.url());
}

async function waitStatus(page, statuses, timeout = T.run) {
  await page.waitForFunction(
    (want) => want.includes(document.querySelector("header [data-status]")?.getAttribute("data-status") ?? ""),
    statuses,
    { timeout },
  );
  return headerStatus(page).getAttribute("data-status");
}

/** Waits (bounded) until the API answers, so a just-started system is not a failure. */
async function waitForApi(deadlineMs = Number(process.env.TASKHUB_E2E_API_WAIT_S ?? 60) * 1000) {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const end = Date.now() + deadlineMs;
  let last = "";
  while (Date.now() < end) {
    try {
      const res = await fetch(`${BASE}/api/health`, { headers, signal: AbortSignal.timeout(5000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${BASE}/api/health did not answer within ${deadlineMs / 1000}s (${last})`);
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  await waitForApi();
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  if (TOKEN) await context.addInitScript((t) => localStorage.setItem("taskhub.token", t), TOKEN);
  const errors = [];
  context.on("weberror", (e) => errors.push(String(e.error())));
  const page = await context.newPage();
  const watcher = await context.newPage();

  await step("timeline loads and the stream goes live", async () => {
    await page.goto(`${BASE}/`);
    await page.locator('[data-testid=connection][data-status=live]').waitFor({ timeout: T.short });
    await shot(page, "01-timeline-start");
  });

  let helloId = null;
  await step("submit hello_world through the form; it appears and finishes live", async () => {
    await watcher.goto(`${BASE}/runs`);
    await watcher.getByTestId("runs-table").waitFor({ timeout: T.short });
    await watcher.locator('[data-testid=connection][data-status=live]').waitFor({ timeout: T.short });
    await watcher.evaluate(() => { window.__noReload = true; });
    helloId = await submitViaForm(page, "hello_world", { target: "e2e", times: 2 });
    if (!helloId) throw new Error("no run id in URL after submit");
    await page.evaluate(() => { window.__noReload = true; });
    await waitStatus(page, ["succeeded"]);
    await watcher.locator(`tr[data-run="${helloId}"][data-status=succeeded]`).waitFor({ timeout: T.run });
    for (const p of [page, watcher]) if (!(await p.evaluate(() => window.__noReload === true))) throw new Error("page reloaded");
    await shot(page, "02-run-hello-logs");
    await shot(watcher, "03-runs");
  });

  let longId = null;
  await step("a running long_task's log receives new lines live", async () => {
    // 40 × 0.5 s: long enough to still be running when cancelled on a loaded machine.
    longId = await submitViaForm(page, "long_task", { steps: 40, delay: 0.5 });
    await waitStatus(page, ["running"]);
    const lines = () => page.getByTestId("log-view").getAttribute("data-lines").then(Number);
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=log-view]")?.getAttribute("data-lines")) >= 2, null, { timeout: T.run });
    const before = await lines();
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=log-view]")?.getAttribute("data-lines")) > n, before, { timeout: T.short });
    await shot(page, "04-run-long-logs");
  });

  await step("cancel a running run", async () => {
    // Right after the log step, while the 10 s run is still going.
    if (page.url() !== `${BASE}/runs/${longId}`) await page.goto(`${BASE}/runs/${longId}`);
    const s = await waitStatus(page, ["running", "cancelling", "cancelled", "succeeded"]);
    if (s !== "running") throw new Error(`long_task was ${s}, not running, before cancel`);
    await page.getByRole("button", { name: "Cancel" }).click();
    const end = await waitStatus(page, ["cancelled", "succeeded", "failed"], T.run);
    if (end !== "cancelled") throw new Error(`run ended ${end}, not cancelled`);
    await shot(page, "07-run-cancelled");
  });

  await step("other run tabs render", async () => {
    for (const tab of ["events", "params", "artifacts"]) {
      await page.goto(`${BASE}/runs/${longId ?? helloId}?tab=${tab}`);
      await headerStatus(page).waitFor({ timeout: T.short });
      if (tab === "events") await page.getByTestId("run-events").waitFor({ timeout: T.short });
      if (tab === "params") await page.getByTestId("argv").waitFor({ timeout: T.short });
      await shot(page, `05-run-${tab}`);
    }
  });

  await step("timeline shows bars and a click opens the run", async () => {
    await page.goto(`${BASE}/`);
    const bar = page.locator(`.gantt g.bar[data-run="${longId}"]`).first();
    await bar.waitFor({ timeout: T.short });
    await shot(page, "06-timeline-running");
    await bar.locator("rect.body").click({ force: true });
    await page.waitForURL(new RegExp(`/runs/${longId}`), { timeout: T.short });
  });

  await step("bad params show a validation error", async () => {
    await page.goto(`${BASE}/submit?task=hello_world`);
    await page.locator("#param-target").waitFor({ timeout: T.short });
    await page.fill("#param-target", "x");
    await page.fill("#param-times", "abc");
    await page.getByRole("button", { name: "Submit run" }).click();
    await page.getByTestId("submit-error").waitFor({ timeout: T.short });
    await page.getByTestId("error-times").waitFor({ timeout: T.short });
    if (runIdFromUrl(page.url())) throw new Error("navigated to a run despite bad params");
    await shot(page, "08-submit-invalid");
  });

  await step("workers, tasks and events views render", async () => {
    await page.goto(`${BASE}/workers`);
    await page.getByTestId("workers-table").waitFor({ timeout: T.short });
    await shot(page, "09-workers");
    await page.goto(`${BASE}/tasks`);
    await page.locator("[data-task=hello_world]").waitFor({ timeout: T.short });
    await shot(page, "10-tasks");
    await page.goto(`${BASE}/events`);
    await page.locator("[data-testid=event-feed] tr[data-type]").first().waitFor({ timeout: T.short });
    await shot(page, "11-events");
  });

  await step("dark theme follows the system", async () => {
    await page.emulateMedia({ colorScheme: "dark" });
    await page.goto(`${BASE}/`);
    await page.locator(".gantt, .card").first().waitFor({ timeout: T.short });
    await shot(page, "12-timeline-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  if (errors.length) results.push({ name: `no page errors (${errors.join("; ")})`, ok: false });
  await browser.close();
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  console.log(`screenshots in ${OUT}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
