import { Link } from "react-router";
import { RunsFilters } from "../features/runs/RunsFilters";
import { RunsTable } from "../features/runs/RunsTable";

export function RunsPage() {
  return (
    <>
      <div className="spread">
        <h1>Runs</h1>
        <Link to="/submit" className="btn">New run</Link>
      </div>
      <RunsFilters />
      <RunsTable />
    </>
  );
}
