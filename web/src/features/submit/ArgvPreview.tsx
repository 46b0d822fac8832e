/** The exact command a run would execute, asked of the API as the params change (debounced). */
import { useEffect, useState } from "react";
import { api } from "../../api/endpoints";
import { ApiError } from "../../api/client";
import type { JsonObject } from "../../api/types";
import { formatArgv } from "../../lib/argv";

export function ArgvPreview({ taskId, params, onError }: { taskId: string; params: JsonObject; onError: (e: ApiError | null) => void }) {
  const [argv, setArgv] = useState<string[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const key = JSON.stringify(params);
  useEffect(() => {
    let live = true;
    const t = setTimeout(() => {
      api
        .preview(taskId, JSON.parse(key) as JsonObject)
        .then((r) => {
          if (!live) return;
          setArgv(r.argv);
          setProblem(null);
          onError(null);
        })
        .catch((e: unknown) => {
          if (!live) return;
          setArgv(null);
          setProblem(e instanceof ApiError ? e.detail : String(e));
          if (e instanceof ApiError && e.status === 422) onError(e);
        });
    }, 300);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [taskId, key, onError]);
  return (
    <div>
      <div className="muted" style={{ fontSize: 12, marginBottom: 4 }}>Command preview</div>
      {argv ? (
        <pre className="argv" data-testid="argv-preview">{formatArgv(argv)}</pre>
      ) : (
        <pre className="argv muted">{problem ?? "…"}</pre>
      )}
    </div>
  );
}
