/** The runs table: filtered by the URL, cursor-paged, live, with bulk cancel and retry. */
import { useMemo, useRef, useState } from "react";
import { useRunsPages } from "../../api/queries";
import { api } from "../../api/endpoints";
import { ErrorBox, Loading } from "../../components/Feedback";
import { useNow } from "../../lib/useNow";
import { canCancel, canRetry } from "../../lib/status";
import { useRunFilter } from "./RunsFilters";
import { RunRow } from "./RunRow";
import { bulk } from "./useRunActions";

export function RunsTable() {
  const filter = useRunFilter();
  const q = useRunsPages(filter);
  const now = useNow(1000);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [bulkMsg, setBulkMsg] = useState<string | null>(null);
  const runs = useMemo(() => {
    const seen = new Set<string>();
    return (q.data?.pages ?? []).flatMap((p) => p.items).filter((r) => !seen.has(r.run_id) && seen.add(r.run_id));
  }, [q.data]);

  // Rows that arrive after the first load flash once, so new runs are noticed.
  const filterKey = `${filter.status}|${filter.task_id}`;
  const initial = useRef<{ key: string; ids: Set<string> } | null>(null);
  if (q.data && initial.current?.key !== filterKey) initial.current = { key: filterKey, ids: new Set(runs.map((r) => r.run_id)) };

  const toggle = (id: string) =>
    setSelected((s) => {
      const n = new Set(s);
      if (n.has(id)) n.delete(id);
      else n.add(id);
      return n;
    });
  const chosen = runs.filter((r) => selected.has(r.run_id));
  const doBulk = async (label: string, ids: string[], fn: (id: string) => Promise<unknown>) => {
    const { failed } = await bulk(ids, fn);
    setBulkMsg(`${label} ${ids.length - failed.length}/${ids.length}${failed.length ? ` (failed: ${failed.join(", ")})` : ""}`);
    setSelected(new Set());
  };
  const cancellable = chosen.filter((r) => canCancel(r.status)).map((r) => r.run_id);
  const retryable = chosen.filter((r) => canRetry(r.status)).map((r) => r.run_id);

  if (q.isPending) return <Loading what="Loading runs" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  return (
    <>
      <div className="row" style={{ margin: "8px 0" }}>
        <span className="muted">{selected.size} selected</span>
        <button className="small danger" disabled={cancellable.length === 0} onClick={() => void doBulk("cancelled", cancellable, api.cancel)}>
          Cancel {cancellable.length || ""}
        </button>
        <button className="small" disabled={retryable.length === 0} onClick={() => void doBulk("retried", retryable, api.retry)}>
          Retry {retryable.length || ""}
        </button>
        {bulkMsg && <span className="muted">{bulkMsg}</span>}
      </div>
      <table className="data" data-testid="runs-table">
        <thead>
          <tr>
            <th>
              <input
                type="checkbox"
                aria-label="select all"
                checked={runs.length > 0 && selected.size === runs.length}
                onChange={(e) => setSelected(new Set(e.target.checked ? runs.map((r) => r.run_id) : []))}
              />
            </th>
            <th>Run</th>
            <th>Status</th>
            <th>Task</th>
            <th>Params</th>
            <th>Attempt</th>
            <th>Submitted</th>
            <th>Duration</th>
            <th>Progress</th>
            <th>Worker</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <RunRow key={r.run_id} run={r} now={now} fresh={initial.current !== null && !initial.current.ids.has(r.run_id)} selected={selected.has(r.run_id)} onToggle={toggle} />
          ))}
          {runs.length === 0 && (
            <tr>
              <td colSpan={10} className="muted">No runs match.</td>
            </tr>
          )}
        </tbody>
      </table>
      <div className="row" style={{ marginTop: 10 }}>
        {q.hasNextPage && (
          <button onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage}>
            {q.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        )}
      </div>
    </>
  );
}
