/** Exponential backoff with optional jitter; pure so tests can pin it. */

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  factor: number;
  /** Returns a number in [0, 1); jitter spreads the delay over [delay/2, delay]. */
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  baseMs: 500,
  maxMs: 30_000,
  factor: 2,
  random: Math.random,
};

/** Delay before reconnect attempt `failures` (1 = first retry). */
export function backoffDelay(failures: number, opts: BackoffOptions = DEFAULT_BACKOFF): number {
  const n = Math.max(0, failures - 1);
  const raw = Math.min(opts.maxMs, opts.baseMs * Math.pow(opts.factor, n));
  return Math.round(raw * (0.5 + opts.random() * 0.5));
}
