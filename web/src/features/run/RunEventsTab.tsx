/** The run's events in order, coloured by severity, with a raw JSON toggle. */
import { useState } from "react";
import { useRunEvents } from "../../api/queries";
import { ErrorBox, Loading } from "../../components/Feedback";
import { eventMeta } from "../../lib/eventMeta";
import { formatTime } from "../../lib/format";
import { JsonView } from "../../components/JsonView";

export function RunEventsTab({ runId }: { runId: string }) {
  const q = useRunEvents(runId);
  const [raw, setRaw] = useState(false);
  if (q.isPending) return <Loading what="Loading events" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const events = [...q.data].sort((a, b) => a.seq - b.seq);
  return (
    <section>
      <label className="row" style={{ marginBottom: 8 }}>
        <input type="checkbox" checked={raw} onChange={(e) => setRaw(e.target.checked)} /> raw JSON
      </label>
      {raw ? (
        <JsonView value={events} />
      ) : (
        <table className="data" data-testid="run-events">
          <thead>
            <tr>
              <th>Seq</th>
              <th>Time</th>
              <th>Type</th>
              <th>Worker</th>
              <th>Details</th>
            </tr>
          </thead>
          <tbody>
            {events.map((e) => {
              const m = eventMeta(e);
              return (
                <tr key={e.seq} data-type={e.type}>
                  <td className="mono muted">{e.seq}</td>
                  <td className="mono" title={e.ts}>{formatTime(e.ts)}</td>
                  <td className={`sev-${m.severity}`} style={{ fontWeight: 600 }}>{e.type}</td>
                  <td className="mono">{e.worker_id ?? ""}</td>
                  <td>{m.summary}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
