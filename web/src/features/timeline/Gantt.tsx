/** Hand-written SVG Gantt: lanes per worker slot, bars per attempt, event markers, a "now" line. */
import { useEffect, useRef, useState, type PointerEvent } from "react";
import type { Bar, GanttModel, Marker } from "../../lib/gantt";
import { statusColor } from "../../lib/status";
import { formatTick, tickStep, ticks, type TimeWindow } from "../../lib/timeAxis";
import { formatDuration } from "../../lib/format";

const LABEL_W = 150;
const LANE_H = 28;
const AXIS_H = 24;
const BAR_PAD = 5;

interface Props {
  model: GanttModel;
  window: TimeWindow;
  now: number;
  onZoom: (factor: number, anchorFrac: number) => void;
  onPan: (deltaMs: number) => void;
  onOpen: (runId: string) => void;
}

function useWidth() {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const ro = new ResizeObserver(([entry]) => entry && setWidth(entry.contentRect.width));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return { ref, width };
}

/** Red for reaped and refused late reports, amber for cancel and retry, a dot for artifacts. */
function MarkerGlyph({ marker: m, x, y, h }: { marker: Marker; x: number; y: number; h: number }) {
  const color = m.type === "refused" || m.type === "reaped" ? "var(--danger)" : m.type === "artifact" ? "var(--fg-muted)" : "var(--warn)";
  return (
    <g data-marker={m.type}>
      <title>{m.label}</title>
      {m.type === "artifact" ? (
        <circle cx={x} cy={y - 1} r={3} fill={color} />
      ) : (
        <rect x={x - 1} y={y - 3} width={2} height={h + 6} fill={color} strokeDasharray={m.type === "retry_scheduled" ? "2 2" : undefined} />
      )}
      {m.type === "refused" && <path d={`M ${x - 5} ${y - 4} h 10 l -5 7 z`} fill="var(--danger)" />}
    </g>
  );
}

export function Gantt({ model, window: w, now, onZoom, onPan, onOpen }: Props) {
  const { ref, width } = useWidth();
  const drag = useRef<{ x: number; moved: boolean } | null>(null);
  const plotW = Math.max(100, width - LABEL_W);
  const span = w.end - w.start;
  const x = (t: number) => LABEL_W + ((t - w.start) / span) * plotW;
  const laneIndex = new Map(model.lanes.map((l, i) => [l.key, i]));
  const height = AXIS_H + Math.max(1, model.lanes.length) * LANE_H + 4;
  const step = tickStep(span, plotW);

  // Wheel zooms around the pointer; registered non-passive so the page does not scroll too.
  const zoomRef = useRef({ onZoom, plotW });
  zoomRef.current = { onZoom, plotW };
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const onWheel = (e: globalThis.WheelEvent) => {
      e.preventDefault();
      const rect = el.getBoundingClientRect();
      const { onZoom: zoomFn, plotW: pw } = zoomRef.current;
      zoomFn(e.deltaY > 0 ? 1.25 : 0.8, Math.min(1, Math.max(0, (e.clientX - rect.left - LABEL_W) / pw)));
    };
    el.addEventListener("wheel", onWheel, { passive: false });
    return () => el.removeEventListener("wheel", onWheel);
  }, [ref]);
  const onDown = (e: PointerEvent) => {
    drag.current = { x: e.clientX, moved: false };
  };
  const onMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d) return;
    const dx = e.clientX - d.x;
    if (Math.abs(dx) < 3 && !d.moved) return;
    if (!d.moved) e.currentTarget.setPointerCapture(e.pointerId);
    d.moved = true;
    d.x = e.clientX;
    onPan((-dx / plotW) * span);
  };
  const onUp = () => {
    // Cleared after the click that may follow, so a drag never opens a run.
    setTimeout(() => (drag.current = null), 0);
  };
  const open = (bar: Bar) => {
    if (!drag.current?.moved) onOpen(bar.runId);
  };

  const visible = model.bars.filter((b) => (b.end ?? now) >= w.start && b.start <= w.end);

  return (
    <div className="gantt" ref={ref} onPointerDown={onDown} onPointerMove={onMove} onPointerUp={onUp} onPointerCancel={onUp}>
      <svg width={width} height={height} role="img" aria-label="timeline of runs per worker slot">
        <g className="grid">
          <rect x={0} y={0} width={LABEL_W} height={height} fill="var(--bg-elev)" />
          <line x1={LABEL_W} x2={LABEL_W} y1={0} y2={height} />
          {ticks(w, plotW).filter((t) => x(t) >= LABEL_W).map((t) => (
            <g key={t}>
              <line x1={x(t)} x2={x(t)} y1={AXIS_H - 4} y2={height} />
              <text x={x(t) + 3} y={14}>{formatTick(t, step)}</text>
            </g>
          ))}
        </g>
        {model.lanes.map((lane, i) => (
          <g key={lane.key} transform={`translate(0, ${AXIS_H + i * LANE_H})`}>
            {i % 2 === 1 && <rect x={0} y={0} width={width} height={LANE_H} fill="var(--bg-sunk)" opacity={0.5} />}
            <text x={8} y={LANE_H / 2 + 4} opacity={lane.alive ? 1 : 0.5}>
              {lane.slot === 0 ? lane.workerId : ""} <tspan className="muted" fill="var(--fg-muted)">#{lane.slot + 1}</tspan>
              {!lane.alive && lane.slot === 0 ? " (stopped)" : ""}
            </text>
          </g>
        ))}
        <line className="now" x1={x(now)} x2={x(now)} y1={AXIS_H - 6} y2={height} />
        <svg x={LABEL_W} y={0} width={plotW} height={height} overflow="hidden">
          <g transform={`translate(${-LABEL_W}, 0)`}>
            {visible.map((bar) => {
              const lane = laneIndex.get(bar.lane) ?? 0;
              const y = AXIS_H + lane * LANE_H + BAR_PAD;
              const x0 = Math.max(LABEL_W - 2, x(bar.start));
              const x1 = Math.max(x0 + 3, Math.min(LABEL_W + plotW + 2, x(bar.end ?? now)));
              const h = LANE_H - 2 * BAR_PAD;
              const label = `${bar.taskId ?? ""} ${bar.runId}`.trim();
              return (
                <g key={bar.key} className="bar" data-run={bar.runId} data-status={bar.status} onClick={() => open(bar)}>
                  <title>{`${label} · attempt ${bar.attempt} · ${bar.status}${bar.pct !== null ? ` · ${Math.round(bar.pct)}%` : ""} · ${formatDuration((bar.end ?? now) - bar.start)}`}</title>
                  <rect className="body" x={x0} y={y} width={x1 - x0} height={h} rx={3} fill={statusColor(bar.status)} opacity={bar.end === null ? 0.95 : 0.75} />
                  {bar.end === null && bar.pct !== null && (
                    <rect x={x0} y={y + h - 3} width={((x1 - x0) * Math.min(100, Math.max(0, bar.pct))) / 100} height={3} fill="#fff" opacity={0.7} />
                  )}
                  {x1 - x0 > 60 && (
                    <text x={x0 + 5} y={y + h / 2 + 4} fill="#fff" style={{ fill: "#fff", pointerEvents: "none" }}>
                      {label.length * 6 > x1 - x0 - 10 ? bar.runId : label}
                    </text>
                  )}
                  {bar.markers.map((m) => (
                    <MarkerGlyph key={m.seq} marker={m} x={x(m.ts)} y={y} h={h} />
                  ))}
                </g>
              );
            })}
          </g>
        </svg>
      </svg>
    </div>
  );
}
