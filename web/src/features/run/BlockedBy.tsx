/** Why a queued run has not started: each blocker's message, with links to the runs holding it. */
import { Link } from "react-router";
import type { Blocker } from "../../api/types";

export function BlockedBy({ blockers }: { blockers: (Blocker | string)[] }) {
  return (
    <ul style={{ margin: 0, paddingLeft: 18 }} data-testid="blocked-by">
      {blockers.map((b, i) =>
        typeof b === "string" ? (
          <li key={i}>{b}</li>
        ) : (
          <li key={i} data-reason={b.reason}>
            {b.message}
            {b.runs && b.runs.length > 0 && (
              <span>
                {" "}
                (
                {b.runs.map((id, j) => (
                  <span key={id}>
                    {j > 0 && ", "}
                    <Link to={`/runs/${id}`} className="mono">{id}</Link>
                  </span>
                ))}
                )
              </span>
            )}
          </li>
        ),
      )}
    </ul>
  );
}
