/** Status and task filters, kept in the URL (?status=&task_id=). */
import { useSearchParams } from "react-router";
import { RUN_STATUSES, type RunStatus } from "../../api/types";
import { useTasks } from "../../api/queries";

export function useRunFilter(): { status: RunStatus | ""; task_id: string } {
  const [sp] = useSearchParams();
  const status = sp.get("status") ?? "";
  return {
    status: (RUN_STATUSES as readonly string[]).includes(status) ? (status as RunStatus) : "",
    task_id: sp.get("task_id") ?? "",
  };
}

export function RunsFilters() {
  const [sp, setSp] = useSearchParams();
  const filter = useRunFilter();
  const tasks = useTasks().data?.items ?? [];
  const set = (key: string, value: string) => {
    const next = new URLSearchParams(sp);
    if (value) next.set(key, value);
    else next.delete(key);
    setSp(next, { replace: true });
  };
  return (
    <div className="row">
      <label>
        Status{" "}
        <select aria-label="status filter" value={filter.status} onChange={(e) => set("status", e.target.value)}>
          <option value="">any</option>
          {RUN_STATUSES.map((s) => (
            <option key={s} value={s}>{s}</option>
          ))}
        </select>
      </label>
      <label>
        Task{" "}
        <select aria-label="task filter" value={filter.task_id} onChange={(e) => set("task_id", e.target.value)}>
          <option value="">any</option>
          {tasks.map((t) => (
            <option key={t.task_id} value={t.task_id}>{t.task_id}</option>
          ))}
        </select>
      </label>
    </div>
  );
}
