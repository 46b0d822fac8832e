/** Typed, defensive readers for an event's `data` (SPEC 4), so views never trust shapes blindly. */
import type { EventEnvelope } from "../api/types";

export function str(e: EventEnvelope, key: string): string | null {
  const v = e.data[key];
  return typeof v === "string" ? v : null;
}

export function num(e: EventEnvelope, key: string): number | null {
  const v = e.data[key];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

export function strList(e: EventEnvelope, key: string): string[] | null {
  const v = e.data[key];
  return Array.isArray(v) && v.every((x) => typeof x === "string") ? (v as string[]) : null;
}

export function tsMs(iso: string | null | undefined): number | null {
  if (!iso) return null;
  // Trim sub-millisecond digits: only 3 are portable across engines.
  const t = Date.parse(iso.replace(/(\.\d{3})\d+/, "$1"));
  return Number.isNaN(t) ? null : t;
}
