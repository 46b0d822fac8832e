import { WorkersTable } from "../features/workers/WorkersTable";

export function WorkersPage() {
  return (
    <>
      <h1>Workers</h1>
      <WorkersTable />
    </>
  );
}
