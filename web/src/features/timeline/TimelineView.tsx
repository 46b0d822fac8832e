/** The timeline with its toolbar: zoom presets, live follow, legend. */
import { useMemo } from "react";
import { useNavigate } from "react-router";
import { useRecentEvents } from "../../stream/context";
import { useWorkers } from "../../api/queries";
import { buildGantt } from "../../lib/gantt";
import { useNow } from "../../lib/useNow";
import { Gantt } from "./Gantt";
import { useTimelineWindow } from "./useTimelineWindow";
import { QueueStrip } from "./QueueStrip";
import { formatDuration } from "../../lib/format";

const PRESETS = [
  ["5m", 5 * 60_000],
  ["15m", 15 * 60_000],
  ["1h", 3_600_000],
  ["6h", 6 * 3_600_000],
  ["24h", 86_400_000],
] as const;

const LEGEND = ["claimed", "running", "cancelling", "succeeded", "failed", "cancelled"] as const;

export function TimelineView() {
  const events = useRecentEvents();
  const now = useNow(1000);
  const workers = useWorkers().data?.items;
  const model = useMemo(() => buildGantt(events, workers ?? []), [events, workers]);
  const tw = useTimelineWindow(now);
  const navigate = useNavigate();

  // Hide lanes of stopped workers that have nothing to show in the window.
  const shown = useMemo(() => {
    const busy = new Set(model.bars.filter((b) => (b.end ?? now) >= tw.window.start).map((b) => b.lane));
    return { ...model, lanes: model.lanes.filter((l) => l.alive || busy.has(l.key)) };
  }, [model, now, tw.window.start]);

  return (
    <section>
      <div className="spread" style={{ marginBottom: 8 }}>
        <div className="row">
          {PRESETS.map(([label, ms]) => (
            <button key={label} className="small" aria-pressed={Math.abs(tw.span - ms) < 1000} onClick={() => tw.setPreset(ms)}>
              {label}
            </button>
          ))}
          <button className="small" onClick={() => tw.zoomBy(0.8, 1)} aria-label="zoom in">+</button>
          <button className="small" onClick={() => tw.zoomBy(1.25, 1)} aria-label="zoom out">-</button>
          <button className={`small${tw.follow ? " primary" : ""}`} onClick={tw.goLive} title="follow now">
            {tw.follow ? "● Following now" : "Jump to now"}
          </button>
          <span className="muted" style={{ fontSize: 12 }}>span {formatDuration(tw.span)} · drag to pan, wheel to zoom</span>
        </div>
        <div className="legend">
          {LEGEND.map((s) => (
            <span key={s}>
              <i style={{ background: `var(--st-${s})` }} />
              {s}
            </span>
          ))}
          <span>
            <i style={{ background: "var(--danger)", width: 3 }} />
            reaped / refused
          </span>
        </div>
      </div>
      <QueueStrip />
      {shown.lanes.length === 0 ? (
        <div className="card muted">No worker has reported yet. Start one with <code>taskhub worker</code> or <code>bin/start.sh</code>.</div>
      ) : (
        <Gantt model={shown} window={tw.window} now={now} onZoom={tw.zoomBy} onPan={tw.panBy} onOpen={(id) => navigate(`/runs/${id}`)} />
      )}
    </section>
  );
}
