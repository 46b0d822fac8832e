/** Time-axis helpers for the timeline: nice tick steps, zoom and pan of a [start, end] window. */

export interface TimeWindow {
  start: number;
  end: number;
}

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1000);

export const MIN_SPAN = 10_000;
export const MAX_SPAN = 7 * 86_400_000;

/** A step that gives about one tick per `pxPerTick` pixels. */
export function tickStep(spanMs: number, widthPx: number, pxPerTick = 110): number {
  const target = (spanMs / Math.max(1, widthPx)) * pxPerTick;
  return STEPS.find((s) => s >= target) ?? STEPS[STEPS.length - 1]!;
}

export function ticks(w: TimeWindow, widthPx: number): number[] {
  const step = tickStep(w.end - w.start, widthPx);
  const out: number[] = [];
  for (let t = Math.ceil(w.start / step) * step; t <= w.end; t += step) out.push(t);
  return out;
}

export function clampSpan(span: number): number {
  return Math.min(MAX_SPAN, Math.max(MIN_SPAN, span));
}

/** Zooms by `factor` (>1 zooms out) keeping the time at `anchorFrac` (0..1 across) fixed. */
export function zoom(w: TimeWindow, factor: number, anchorFrac: number): TimeWindow {
  const span = w.end - w.start;
  const next = clampSpan(span * factor);
  const anchor = w.start + span * anchorFrac;
  const start = anchor - next * anchorFrac;
  return { start, end: start + next };
}

export function pan(w: TimeWindow, deltaMs: number): TimeWindow {
  return { start: w.start + deltaMs, end: w.end + deltaMs };
}

/** A window of `span` whose right edge is a little past `now`. */
export function following(now: number, span: number): TimeWindow {
  const end = now + span * 0.04;
  return { start: end - span, end };
}

export function formatTick(t: number, step: number): string {
  const d = new Date(t);
  if (step >= 86_400_000) return d.toLocaleDateString();
  const hh = String(d.getHours()).padStart(2, "0");
  const mm = String(d.getMinutes()).padStart(2, "0");
  if (step >= 60_000) return `${hh}:${mm}`;
  return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, "0")}`;
}
