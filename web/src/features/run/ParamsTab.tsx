/** Params, the exact argv (from the `started` event) and the task module version (from `submitted`). */
import type { RunView } from "../../api/types";
import { useRunEvents } from "../../api/queries";
import { JsonView } from "../../components/JsonView";
import { str, strList } from "../../lib/eventData";
import { formatArgv } from "../../lib/argv";

export function ParamsTab({ run }: { run: RunView }) {
  const events = useRunEvents(run.run_id).data ?? [];
  const started = [...events].reverse().find((e) => e.type === "started");
  const submitted = events.find((e) => e.type === "submitted");
  const argv = (started && strList(started, "argv")) ?? run.argv;
  const version = run.task_version ?? (submitted && str(submitted, "task_version"));
  return (
    <section>
      <h2>Params</h2>
      <JsonView value={run.params} />
      <h2>Command</h2>
      {argv ? <pre className="argv" data-testid="argv">{formatArgv(argv)}</pre> : <p className="muted">Not started yet.</p>}
      <h2>Task version</h2>
      <p className="mono">{version ?? "–"}</p>
      {run.result !== null && run.result !== undefined && (
        <>
          <h2>Result</h2>
          <JsonView value={run.result} />
        </>
      )}
    </section>
  );
}
