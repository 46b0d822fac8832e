/**
 * A run's log: reads the tail first (negative offset), then follows new text over the log SSE
 * endpoint until `end`; earlier chunks load on demand. Lines live in a ref; `version` re-renders.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { api, type LogStream } from "../../api/endpoints";
import { ApiError, withToken } from "../../api/client";
import { appendText, byteLength, prependText, unseenPart } from "../../lib/logLines";

export const TAIL_BYTES = 65_536;

export type LogState = "loading" | "following" | "ended" | "error";

export function useLogTail(runId: string, stream: LogStream, follow: boolean) {
  const lines = useRef<string[]>([]);
  const range = useRef({ start: 0, end: 0 });
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<LogState>("loading");
  const [error, setError] = useState<string | null>(null);
  const bump = () => setVersion((v) => v + 1);

  useEffect(() => {
    let cancelled = false;
    let es: EventSource | null = null;
    lines.current = [];
    range.current = { start: 0, end: 0 };
    setState("loading");
    setError(null);
    bump();
    (async () => {
      try {
        const { text, size, start } = await api.log(runId, stream, -TAIL_BYTES).catch((e: unknown) => {
          // No log file yet (a queued run): start empty and follow from 0.
          if (e instanceof ApiError && e.status === 404) return { text: "", size: 0, start: 0 };
          throw e;
        });
        if (cancelled) return;
        const end = size ?? byteLength(text);
        range.current = { start: start ?? Math.max(0, end - byteLength(text)), end };
        appendText(lines.current, text);
        bump();
        if (!follow) {
          setState("ended");
          return;
        }
        setState("following");
        es = new EventSource(withToken(api.logStreamUrl(runId, stream, end)));
        es.addEventListener("log", (m: MessageEvent<string>) => {
          const chunk = JSON.parse(m.data) as { offset: number; text: string };
          const fresh = unseenPart(chunk.offset, chunk.text, range.current.end);
          range.current.end = Math.max(range.current.end, chunk.offset + byteLength(chunk.text));
          if (fresh) {
            appendText(lines.current, fresh);
            bump();
          }
        });
        es.addEventListener("end", () => {
          es?.close();
          if (!cancelled) setState("ended");
        });
      } catch (e) {
        if (!cancelled) {
          setError(e instanceof Error ? e.message : String(e));
          setState("error");
        }
      }
    })();
    return () => {
      cancelled = true;
      es?.close();
    };
  }, [runId, stream, follow]);

  const loadEarlier = useCallback(async () => {
    const { start } = range.current;
    if (start <= 0) return;
    const from = Math.max(0, start - TAIL_BYTES);
    const { text } = await api.log(runId, stream, from, start - from);
    range.current.start = from;
    prependText(lines.current, text);
    bump();
  }, [runId, stream]);

  return { lines: lines.current, version, state, error, hasEarlier: range.current.start > 0, loadEarlier, size: range.current.end };
}
