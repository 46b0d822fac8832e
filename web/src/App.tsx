import { NavLink, Route, Routes } from "react-router";
import { ConnectionIndicator } from "./components/ConnectionIndicator";
import { TokenPrompt } from "./components/TokenPrompt";
import { TimelinePage } from "./pages/TimelinePage";
import { RunsPage } from "./pages/RunsPage";
import { RunPage } from "./pages/RunPage";
import { SubmitPage } from "./pages/SubmitPage";
import { WorkersPage } from "./pages/WorkersPage";
import { TasksPage } from "./pages/TasksPage";
import { EventsPage } from "./pages/EventsPage";

const NAV = [
  ["/", "Timeline"],
  ["/runs", "Runs"],
  ["/submit", "Submit"],
  ["/workers", "Workers"],
  ["/tasks", "Tasks"],
  ["/events", "Events"],
] as const;

export function App() {
  return (
    <div className="layout">
      <nav className="sidebar" aria-label="main">
        <div className="brand">TaskHub</div>
        {NAV.map(([to, label]) => (
          <NavLink key={to} to={to} end={to === "/"}>
            {label}
          </NavLink>
        ))}
        <div className="spacer" />
        <ConnectionIndicator />
      </nav>
      <main className="main">
        <Routes>
          <Route path="/" element={<TimelinePage />} />
          <Route path="/runs" element={<RunsPage />} />
          <Route path="/runs/:runId" element={<RunPage />} />
          <Route path="/submit" element={<SubmitPage />} />
          <Route path="/workers" element={<WorkersPage />} />
          <Route path="/tasks" element={<TasksPage />} />
          <Route path="/events" element={<EventsPage />} />
          <Route path="*" element={<p>Not found. <NavLink to="/">Back to the timeline</NavLink></p>} />
        </Routes>
      </main>
      <TokenPrompt />
    </div>
  );
}
