/** The timeline's visible window: follows "now" live until the user pans, then stays put. */
import { useCallback, useState } from "react";
import { clampSpan, following, pan, zoom, type TimeWindow } from "../../lib/timeAxis";

export function useTimelineWindow(now: number, initialSpan = 5 * 60_000) {
  const [follow, setFollow] = useState(true);
  const [span, setSpan] = useState(initialSpan);
  const [fixed, setFixed] = useState<TimeWindow | null>(null);

  const window: TimeWindow = follow || !fixed ? following(now, span) : fixed;

  const zoomBy = useCallback(
    (factor: number, anchorFrac: number) => {
      if (follow) setSpan((s) => clampSpan(s * factor));
      else setFixed((w) => (w ? zoom(w, factor, anchorFrac) : w));
    },
    [follow],
  );

  const panBy = useCallback(
    (deltaMs: number) => {
      setFollow(false);
      setFixed((w) => pan(w ?? following(now, span), deltaMs));
    },
    [now, span],
  );

  const setPreset = useCallback((ms: number) => {
    setSpan(ms);
    setFixed((w) => (w ? { start: w.end - ms, end: w.end } : w));
  }, []);

  const goLive = useCallback(() => {
    setFollow(true);
    setFixed(null);
  }, []);

  return { window, follow, span: window.end - window.start, zoomBy, panBy, setPreset, goLive };
}
