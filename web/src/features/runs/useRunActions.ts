/** Cancel and retry mutations; the event stream brings the resulting state. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { api } from "../../api/endpoints";
import { keys } from "../../api/queries";
import type { RunView } from "../../api/types";

export function useRunActions() {
  const qc = useQueryClient();
  const onDone = (run: RunView) => {
    qc.setQueryData(keys.run(run.run_id), run);
    void qc.invalidateQueries({ queryKey: keys.runs() });
  };
  const cancel = useMutation({ mutationFn: (runId: string) => api.cancel(runId), onSuccess: onDone });
  const retry = useMutation({ mutationFn: (runId: string) => api.retry(runId), onSuccess: onDone });
  return { cancel, retry };
}

/** Applies an action to many runs; resolves with how many failed. */
export async function bulk(ids: string[], action: (id: string) => Promise<unknown>): Promise<{ failed: string[] }> {
  const results = await Promise.allSettled(ids.map((id) => action(id)));
  return { failed: ids.filter((_, i) => results[i]?.status === "rejected") };
}
