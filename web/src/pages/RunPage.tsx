import { useParams, useSearchParams } from "react-router";
import { useRun } from "../api/queries";
import { ErrorBox, Loading } from "../components/Feedback";
import { Tabs, type TabDef } from "../components/Tabs";
import { RunHeader } from "../features/run/RunHeader";
import { RunEventsTab } from "../features/run/RunEventsTab";
import { LogsTab } from "../features/run/LogsTab";
import { ArtifactsTab } from "../features/run/ArtifactsTab";
import { ParamsTab } from "../features/run/ParamsTab";

type Tab = "events" | "logs" | "artifacts" | "params";
const TABS: TabDef<Tab>[] = [
  { key: "logs", label: "Logs" },
  { key: "events", label: "Events" },
  { key: "artifacts", label: "Artifacts" },
  { key: "params", label: "Params" },
];

export function RunPage() {
  const { runId = "" } = useParams();
  const [sp, setSp] = useSearchParams();
  const tab = (TABS.find((t) => t.key === sp.get("tab"))?.key ?? "logs") as Tab;
  const q = useRun(runId);
  if (q.isPending) return <Loading what="Loading run" />;
  if (q.isError) return <ErrorBox error={q.error} />;
  const run = q.data;
  return (
    <>
      <RunHeader run={run} />
      <Tabs
        tabs={TABS.map((t) => (t.key === "artifacts" ? { ...t, label: `Artifacts (${run.artifacts.length})` } : t))}
        active={tab}
        onChange={(k) => setSp({ tab: k }, { replace: true })}
      />
      {tab === "events" && <RunEventsTab runId={runId} />}
      {tab === "logs" && <LogsTab run={run} />}
      {tab === "artifacts" && <ArtifactsTab run={run} />}
      {tab === "params" && <ParamsTab run={run} />}
    </>
  );
}
