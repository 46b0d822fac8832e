import { useTasks } from "../api/queries";
import { ErrorBox, Loading } from "../components/Feedback";
import { TaskCard } from "../features/tasks/TaskCard";
import { TaskErrors } from "../features/tasks/TaskErrors";

export function TasksPage() {
  const q = useTasks();
  return (
    <>
      <h1>Tasks</h1>
      {q.isPending && <Loading what="Loading tasks" />}
      {q.isError && <ErrorBox error={q.error} />}
      {q.data && (
        <>
          <TaskErrors errors={q.data.errors} />
          <div className="grid-cards">
            {q.data.items.map((t) => (
              <TaskCard key={t.task_id} task={t} />
            ))}
          </div>
        </>
      )}
    </>
  );
}
