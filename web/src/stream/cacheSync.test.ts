import { describe, expect, it } from "vitest";
import { QueryClient, type InfiniteData } from "@tanstack/react-query";
import { CacheSync, staleBy } from "./cacheSync";
import { keys } from "../api/queries";
import { EVENT_TYPES, type RunPage, type RunView } from "../api/types";
import { ev } from "../test/fakes";

const run = { run_id: "r-1", status: "queued", last_seq: 1, attempt: 0, artifacts: [] } as unknown as RunView;

describe("CacheSync", () => {
  it("patches the cached run, its events and every runs page at once", () => {
    const qc = new QueryClient();
    qc.setQueryData(keys.run("r-1"), run);
    qc.setQueryData(keys.runEvents("r-1"), []);
    qc.setQueryData<InfiniteData<RunPage>>(keys.runs({ status: "" }), { pages: [{ items: [run], next_cursor: null }], pageParams: [null] });
    const sync = new CacheSync(qc, 10_000);
    const e = ev("claimed", { seq: 5, run_id: "r-1", worker_id: "w-1", data: { attempt: 1 } });
    sync.apply(e);
    sync.apply(e);
    expect(qc.getQueryData<RunView>(keys.run("r-1"))?.status).toBe("claimed");
    expect(qc.getQueryData<unknown[]>(keys.runEvents("r-1"))).toHaveLength(1);
    const pages = qc.getQueryData<InfiniteData<RunPage>>(keys.runs({ status: "" }));
    expect(pages?.pages[0]?.items[0]?.worker_id).toBe("w-1");
  });

  it("says what each event type makes stale", () => {
    for (const t of EVENT_TYPES) expect(Array.isArray(staleBy(ev(t)))).toBe(true);
    expect(staleBy(ev("submitted"))).toContain("runs");
    expect(staleBy(ev("worker_started"))).toEqual(["workers"]);
    expect(staleBy(ev("heartbeat"))).toEqual([]);
  });
});
