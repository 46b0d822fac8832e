/** Shows whether the live stream is up, and when it will retry if not. */
import { useConnection } from "../stream/context";
import { useNow } from "../lib/useNow";

export function ConnectionIndicator() {
  const c = useConnection();
  const now = useNow(c.status === "reconnecting" ? 1000 : 0);
  const [label, color] =
    c.status === "live"
      ? ["Live", "var(--ok)"]
      : c.status === "reconnecting"
        ? [`Reconnecting${c.retryAt ? ` in ${Math.max(0, Math.ceil((c.retryAt - now) / 1000))}s` : ""}`, "var(--warn)"]
        : c.status === "connecting" || c.status === "idle"
          ? ["Connecting", "var(--fg-muted)"]
          : ["Offline", "var(--danger)"];
  return (
    <div className="conn" data-testid="connection" data-status={c.status} title={c.failures ? `${c.failures} failed attempts` : "event stream"}>
      <span className={`badge${c.status === "live" ? " live" : ""}`} style={{ color }}>
        <span className="dot" />
        {label}
      </span>
    </div>
  );
}
