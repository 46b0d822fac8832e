/** The global event feed: live, filterable by type and run, with a pause switch. */
import { useMemo, useState } from "react";
import { Link, useSearchParams } from "react-router";
import { useRecentEvents } from "../../stream/context";
import { EVENT_TYPES, type EventEnvelope } from "../../api/types";
import { eventMeta } from "../../lib/eventMeta";
import { formatTime } from "../../lib/format";

const SHOWN = 500;

export function filterEvents(events: readonly EventEnvelope[], type: string, run: string): EventEnvelope[] {
  const out: EventEnvelope[] = [];
  for (let i = events.length - 1; i >= 0 && out.length < SHOWN; i--) {
    const e = events[i]!;
    if (type && e.type !== type) continue;
    if (run && !(e.run_id ?? "").includes(run)) continue;
    out.push(e);
  }
  return out;
}

export function EventFeed() {
  const live = useRecentEvents();
  const [sp, setSp] = useSearchParams();
  const type = sp.get("type") ?? "";
  const run = sp.get("run_id") ?? "";
  const [paused, setPaused] = useState<readonly EventEnvelope[] | null>(null);
  const source = paused ?? live;
  const shown = useMemo(() => filterEvents(source, type, run), [source, type, run]);
  const waiting = paused ? live.length - paused.length : 0;
  const [open, setOpen] = useState<number | null>(null);

  const set = (k: string, v: string) => {
    const n = new URLSearchParams(sp);
    if (v) n.set(k, v);
    else n.delete(k);
    setSp(n, { replace: true });
  };

  return (
    <section>
      <div className="row" style={{ marginBottom: 10 }}>
        <select aria-label="event type" value={type} onChange={(e) => set("type", e.target.value)}>
          <option value="">all types</option>
          {EVENT_TYPES.map((t) => (
            <option key={t} value={t}>{t}</option>
          ))}
        </select>
        <input aria-label="run id" placeholder="run id" value={run} onChange={(e) => set("run_id", e.target.value.trim())} />
        <label className="row" style={{ gap: 4 }}>
          <input type="checkbox" role="switch" checked={paused !== null} onChange={(e) => setPaused(e.target.checked ? live : null)} />
          pause live
        </label>
        {paused && <span className="muted">{waiting > 0 ? `${waiting} new events waiting` : "paused"}</span>}
        <span className="muted">showing {shown.length} of {source.length} recent</span>
      </div>
      <table className="data" data-testid="event-feed">
        <thead>
          <tr>
            <th>Seq</th>
            <th>Time</th>
            <th>Type</th>
            <th>Run</th>
            <th>Worker</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((e) => {
            const m = eventMeta(e);
            return (
              <tr key={e.seq} data-type={e.type} onClick={() => setOpen(open === e.seq ? null : e.seq)} style={{ cursor: "pointer" }}>
                <td className="mono muted">{e.seq}</td>
                <td className="mono" title={e.ts}>{formatTime(e.ts)}</td>
                <td className={`sev-${m.severity}`} style={{ fontWeight: 600 }}>{e.type}</td>
                <td className="mono">{e.run_id ? <Link to={`/runs/${e.run_id}`} onClick={(ev) => ev.stopPropagation()}>{e.run_id}</Link> : ""}</td>
                <td className="mono">{e.worker_id ?? ""}</td>
                <td>{open === e.seq ? <pre>{JSON.stringify(e.data, null, 2)}</pre> : m.summary}</td>
              </tr>
            );
          })}
          {shown.length === 0 && (
            <tr>
              <td colSpan={6} className="muted">No events yet.</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
