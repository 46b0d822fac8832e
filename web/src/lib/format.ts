/** Formatting of durations, times and params for tables and headers. */
import type { JsonValue, RunView } from "../api/types";
import { tsMs } from "./eventData";

/** 850 → "850ms", 12_300 → "12.3s", 125_000 → "2m 05s", 7_380_000 → "2h 03m". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Run duration: started (or claimed) to finished, or to `now` while it runs. */
export function runDurationMs(run: Pick<RunView, "started_at" | "claimed_at" | "finished_at">, now: number): number | null {
  const start = tsMs(run.started_at) ?? tsMs(run.claimed_at);
  if (start === null) return null;
  const end = tsMs(run.finished_at) ?? now;
  return Math.max(0, end - start);
}

export function formatTime(iso: string | null | undefined): string {
  const t = tsMs(iso);
  if (t === null) return "–";
  return new Date(t).toLocaleTimeString(undefined, { hour12: false });
}

export function formatDateTime(iso: string | null | undefined): string {
  const t = tsMs(iso);
  if (t === null) return "–";
  const d = new Date(t);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString(undefined, { hour12: false })}`;
}

/** "2m ago" style; future times read "in 5s". */
export function formatRelative(iso: string | null | undefined, now: number): string {
  const t = tsMs(iso);
  if (t === null) return "–";
  const d = now - t;
  return d >= 0 ? `${formatDuration(d)} ago` : `in ${formatDuration(-d)}`;
}

function scalar(v: JsonValue): string {
  if (v === null) return "null";
  if (typeof v === "string") return v.length > 24 ? `${JSON.stringify(v.slice(0, 21))}…` : JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.length}]`;
  return `{${Object.keys(v).length}}`;
}

/** `{target: "world", times: 3}` → `target="world" times=3`, cut to `max` characters. */
export function paramsSummary(params: Record<string, JsonValue> | null | undefined, max = 60): string {
  if (!params) return "";
  const text = Object.entries(params)
    .map(([k, v]) => `${k}=${scalar(v)}`)
    .join(" ");
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
