/** A virtualised log view: only visible lines are in the DOM, so huge logs stay smooth. */
import { useEffect, useMemo, useRef, useState } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import { AnsiLine } from "./AnsiLine";
import { searchLines, visibleCount } from "../../lib/logLines";

const LINE_H = 18;

interface Props {
  lines: readonly string[];
  version: number;
  query: string;
  /** Which match to bring into view. */
  matchIndex: number;
  onMatches: (count: number) => void;
  /** Line numbers mean something only when the log is loaded from its first byte. */
  numbered: boolean;
}

export function LogViewer({ lines, version, query, matchIndex, onMatches, numbered }: Props) {
  const parent = useRef<HTMLDivElement>(null);
  const [stick, setStick] = useState(true);
  const count = visibleCount(lines);
  const matches = useMemo(() => searchLines(lines, query), [lines, query, version]);
  const hits = useMemo(() => new Set(matches), [matches]);
  const current = matches.length ? matches[((matchIndex % matches.length) + matches.length) % matches.length] : undefined;

  const v = useVirtualizer({ count, getScrollElement: () => parent.current, estimateSize: () => LINE_H, overscan: 30 });

  useEffect(() => onMatches(matches.length), [matches.length, onMatches]);
  useEffect(() => {
    if (current !== undefined) {
      setStick(false);
      v.scrollToIndex(current, { align: "center" });
    }
  }, [current, v]);
  useEffect(() => {
    if (stick && count > 0) v.scrollToIndex(count - 1, { align: "end" });
  }, [count, version, stick, v]);

  const onScroll = () => {
    const el = parent.current;
    if (el) setStick(el.scrollHeight - el.scrollTop - el.clientHeight < LINE_H * 2);
  };

  return (
    <div className="log" ref={parent} onScroll={onScroll} data-testid="log-view" data-lines={count}>
      <div style={{ height: v.getTotalSize(), position: "relative", minWidth: "100%", width: "max-content" }}>
        {v.getVirtualItems().map((item) => {
          const cls = `line${item.index === current ? " current" : hits.has(item.index) ? " hit" : ""}`;
          return (
            <div key={item.key} className={cls} style={{ position: "absolute", top: 0, left: 0, right: 0, transform: `translateY(${item.start}px)` }}>
              {numbered && <span className="ln">{item.index + 1}</span>}
              <AnsiLine text={lines[item.index] ?? ""} />
            </div>
          );
        })}
      </div>
      {count === 0 && <div className="muted" style={{ padding: 10 }}>No output yet.</div>}
    </div>
  );
}
