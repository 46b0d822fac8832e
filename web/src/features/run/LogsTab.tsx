/** stdout/stderr with tail-first loading, live following, search and download. */
import { useCallback, useState } from "react";
import type { RunView } from "../../api/types";
import { api, type LogStream } from "../../api/endpoints";
import { downloadFile } from "../../api/client";
import { isTerminal } from "../../lib/status";
import { ErrorBox } from "../../components/Feedback";
import { useLogTail } from "./useLogTail";
import { LogViewer } from "./LogViewer";
import { formatBytes } from "../../lib/format";

export function LogsTab({ run }: { run: RunView }) {
  const [stream, setStream] = useState<LogStream>("stdout");
  const follow = !isTerminal(run.status);
  const log = useLogTail(run.run_id, stream, true);
  const [query, setQuery] = useState("");
  const [matchIndex, setMatchIndex] = useState(0);
  const [matches, setMatches] = useState(0);
  const onMatches = useCallback((n: number) => setMatches(n), []);

  return (
    <section>
      <div className="spread" style={{ marginBottom: 8 }}>
        <div className="row">
          {(["stdout", "stderr"] as const).map((s) => (
            <button key={s} className={`small${s === stream ? " primary" : ""}`} onClick={() => setStream(s)}>
              {s}
            </button>
          ))}
          <span className="muted" data-testid="log-state">
            {log.state === "following" ? (follow ? "● following" : "catching up") : log.state} · {formatBytes(log.size)}
          </span>
          {log.hasEarlier && (
            <button className="small" onClick={() => void log.loadEarlier()}>
              Load earlier
            </button>
          )}
        </div>
        <div className="row">
          <input
            type="search"
            placeholder="search log"
            aria-label="search log"
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              setMatchIndex(0);
            }}
            onKeyDown={(e) => e.key === "Enter" && setMatchIndex((i) => i + (e.shiftKey ? -1 : 1))}
          />
          {query && (
            <span className="muted">
              {matches ? `${(((matchIndex % matches) + matches) % matches) + 1}/${matches}` : "0 matches"}
              {log.hasEarlier && " in the loaded part"}
            </span>
          )}
          <button className="small" disabled={!matches} onClick={() => setMatchIndex((i) => i - 1)} aria-label="previous match">↑</button>
          <button className="small" disabled={!matches} onClick={() => setMatchIndex((i) => i + 1)} aria-label="next match">↓</button>
          <button className="small" onClick={() => void api.logBlob(run.run_id, stream).then((b) => downloadFile(b, `${run.run_id}-${stream}.log`))}>
            Download
          </button>
        </div>
      </div>
      {log.error && <ErrorBox error={log.error} />}
      <LogViewer lines={log.lines} version={log.version} query={query} matchIndex={matchIndex} onMatches={onMatches} numbered={!log.hasEarlier} />
    </section>
  );
}
