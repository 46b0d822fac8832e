/** Task files that failed to load, with their error. */
import type { TaskLoadError } from "../../api/types";

export function TaskErrors({ errors }: { errors: TaskLoadError[] }) {
  if (errors.length === 0) return null;
  return (
    <section className="error-box" style={{ marginBottom: 14 }} data-testid="task-errors">
      <b>{errors.length} task file{errors.length > 1 ? "s" : ""} failed to load</b>
      {errors.map((e) => (
        <div key={e.file} style={{ marginTop: 6 }}>
          <div className="mono">{e.file}</div>
          <pre style={{ color: "var(--fg)" }}>{e.error}</pre>
        </div>
      ))}
    </section>
  );
}
