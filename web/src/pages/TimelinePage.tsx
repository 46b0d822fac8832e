import { StatusSummary } from "../features/timeline/StatusSummary";
import { TimelineView } from "../features/timeline/TimelineView";
import { ActiveRuns } from "../features/timeline/ActiveRuns";

export function TimelinePage() {
  return (
    <>
      <h1>Timeline</h1>
      <StatusSummary />
      <TimelineView />
      <ActiveRuns />
    </>
  );
}
