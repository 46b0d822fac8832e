/** Exhaustiveness guard: a new event type fails to compile until every switch handles it. */
export function assertNever<T>(value: never, fallback: T): T {
  void value;
  return fallback;
}
