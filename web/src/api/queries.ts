/** Query keys and hooks over the REST API (TanStack Query). The event stream keeps them fresh. */
import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { api, type RunFilter } from "./endpoints";
import { useConnection } from "../stream/context";

export const keys = {
  runs: (f?: RunFilter) => (f ? (["runs", f] as const) : (["runs"] as const)),
  run: (id: string) => ["run", id] as const,
  runEvents: (id: string) => ["run-events", id] as const,
  tasks: ["tasks"] as const,
  taskRuns: (taskId: string) => ["task-runs", taskId] as const,
  workers: ["workers"] as const,
  stats: ["stats"] as const,
};

/** While the stream is down the cache falls back to polling; while it is up nothing polls. */
function usePollFallback(ms: number): number | false {
  return useConnection().status === "live" ? false : ms;
}

export function useRun(runId: string) {
  const refetchInterval = usePollFallback(5000);
  return useQuery({ queryKey: keys.run(runId), queryFn: ({ signal }) => api.run(runId, signal), refetchInterval });
}

export function useRunEvents(runId: string) {
  const refetchInterval = usePollFallback(10_000);
  return useQuery({
    queryKey: keys.runEvents(runId),
    queryFn: ({ signal }) => api.runEvents(runId, signal),
    refetchInterval,
  });
}

export const RUNS_PAGE = 50;

export function useRunsPages(filter: RunFilter) {
  const refetchInterval = usePollFallback(10_000);
  return useInfiniteQuery({
    queryKey: keys.runs(filter),
    queryFn: ({ pageParam, signal }) => api.runs({ ...filter, limit: RUNS_PAGE, cursor: pageParam }, signal),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    refetchInterval,
  });
}

export function useTasks() {
  return useQuery({ queryKey: keys.tasks, queryFn: ({ signal }) => api.tasks(signal), refetchInterval: 30_000 });
}

export function useTaskRuns(taskId: string) {
  return useQuery({
    queryKey: keys.taskRuns(taskId),
    queryFn: ({ signal }) => api.runs({ task_id: taskId, limit: 30 }, signal),
  });
}

export function useWorkers() {
  const refetchInterval = usePollFallback(10_000);
  return useQuery({ queryKey: keys.workers, queryFn: ({ signal }) => api.workers(signal), refetchInterval });
}

export function useStats() {
  const refetchInterval = usePollFallback(10_000);
  return useQuery({ queryKey: keys.stats, queryFn: ({ signal }) => api.stats(signal), refetchInterval });
}
