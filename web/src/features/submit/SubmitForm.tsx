/** Pick a task, fill its params, preview the argv, submit, then go to the run. */
import { useCallback, useMemo, useState, type FormEvent } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api/endpoints";
import { ApiError } from "../../api/client";
import { keys, useTasks } from "../../api/queries";
import { coerce, fieldsFromSchema, initialValues, type FormValues } from "../../lib/schemaForm";
import { ErrorBox, Loading } from "../../components/Feedback";
import { SchemaFields } from "./SchemaFields";
import { ArgvPreview } from "./ArgvPreview";

export function SubmitForm() {
  const tasks = useTasks();
  const [sp, setSp] = useSearchParams();
  const taskId = sp.get("task") ?? tasks.data?.items[0]?.task_id ?? "";
  const task = tasks.data?.items.find((t) => t.task_id === taskId);
  const fields = useMemo(() => fieldsFromSchema(task?.params_schema), [task]);
  const [valuesByTask, setValuesByTask] = useState<Record<string, FormValues>>({});
  const values = valuesByTask[taskId] ?? initialValues(fields);
  const [priority, setPriority] = useState("0");
  const [serverError, setServerError] = useState<ApiError | null>(null);
  const onPreviewError = useCallback((e: ApiError | null) => setServerError(e), []);
  const navigate = useNavigate();
  const qc = useQueryClient();
  const { params, hints } = coerce(fields, values);

  const submit = useMutation({
    mutationFn: () => api.submit({ task_id: taskId, params, priority: Number(priority) || 0 }),
    onSuccess: (run) => {
      qc.setQueryData(keys.run(run.run_id), run);
      void navigate(`/runs/${run.run_id}`);
    },
    onError: (e) => setServerError(e instanceof ApiError ? e : null),
  });

  if (tasks.isPending) return <Loading what="Loading tasks" />;
  if (tasks.isError) return <ErrorBox error={tasks.error} />;

  const errors: Record<string, string> = { ...hints };
  if (serverError?.field) errors[serverError.field] = serverError.detail;
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    setServerError(null);
    submit.mutate();
  };
  const setValue = (name: string, value: string | boolean) =>
    setValuesByTask((all) => ({ ...all, [taskId]: { ...values, [name]: value } }));

  return (
    <form onSubmit={onSubmit} className="card" aria-label="submit a run" style={{ display: "grid", gap: 14 }}>
      <div className="form-grid">
        <label htmlFor="task">Task</label>
        <div>
          <select id="task" value={taskId} onChange={(e) => setSp({ task: e.target.value }, { replace: true })}>
            {tasks.data.items.map((t) => (
              <option key={t.task_id} value={t.task_id}>
                {t.name} ({t.task_id})
              </option>
            ))}
          </select>
          {task?.description && <div className="hint">{task.description}</div>}
        </div>
        <SchemaFields fields={fields} values={values} errors={errors} onChange={setValue} />
        <label htmlFor="priority">
          Priority<div className="hint">higher runs first</div>
        </label>
        <input id="priority" type="number" value={priority} onChange={(e) => setPriority(e.target.value)} style={{ width: 100 }} />
      </div>
      {task && <ArgvPreview taskId={task.task_id} params={params} onError={onPreviewError} />}
      {serverError && (
        <div className="error-box" role="alert" data-testid="submit-error">
          {serverError.field ? <b>{serverError.field}: </b> : null}
          {serverError.detail}
        </div>
      )}
      {submit.error && !(submit.error instanceof ApiError) && <ErrorBox error={submit.error} />}
      <div>
        <button type="submit" className="primary" disabled={!task || submit.isPending}>
          {submit.isPending ? "Submitting…" : "Submit run"}
        </button>
      </div>
    </form>
  );
}
