import { StatusSummary } from "../features/timeline/StatusSummary";
import { TimelineView } from "../features/timeline/TimelineView";

export function TimelinePage() {
  return (
    <>
      <h1>Timeline</h1>
      <StatusSummary />
      <TimelineView />
    </>
  );
}
