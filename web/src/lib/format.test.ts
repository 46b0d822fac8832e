import { describe, expect, it } from "vitest";
import { formatBytes, formatDuration, paramsSummary, runDurationMs } from "./format";
import { statusColor, isTerminal, canCancel, canRetry } from "./status";
import { RUN_STATUSES } from "../api/types";
import { tsMs } from "./eventData";

describe("formatDuration", () => {
  it.each([
    [null, "–"],
    [-5, "–"],
    [0, "0ms"],
    [850, "850ms"],
    [1500, "1.5s"],
    [12_300, "12s"],
    [125_000, "2m 05s"],
    [3_600_000, "1h 00m"],
    [7_380_000, "2h 03m"],
    [90_000_000, "1d 1h"],
  ])("%s ms → %s", (ms, want) => expect(formatDuration(ms)).toBe(want));
});

describe("runDurationMs", () => {
  const base = { claimed_at: "2026-11-28T06:00:00Z", started_at: "2026-11-28T06:00:01.500000Z", finished_at: null };
  it("counts from start to now while running, and to the end once finished", () => {
    expect(runDurationMs(base, Date.parse("2026-11-28T06:00:11.5Z"))).toBe(10_000);
    expect(runDurationMs({ ...base, finished_at: "2026-11-28T06:00:03.5Z" }, 0)).toBe(2000);
    expect(runDurationMs({ claimed_at: null, started_at: null, finished_at: null }, 0)).toBeNull();
  });
  it("reads microsecond timestamps", () => {
    expect(tsMs("2026-11-28T06:30:00.123456Z")).toBe(Date.parse("2026-11-28T06:30:00.123Z"));
  });
});

describe("paramsSummary", () => {
  it("renders key=value pairs, quoting strings and sizing containers", () => {
    expect(paramsSummary({ target: "world", times: 3, flag: true, none: null })).toBe('target="world" times=3 flag=true none=null');
    expect(paramsSummary({ xs: [1, 2, 3], o: { a: 1 } })).toBe("xs=[3] o={1}");
  });
  it("cuts long values and the whole line", () => {
    expect(paramsSummary({ s: "a".repeat(40) })).toBe(`s="${"a".repeat(21)}"…`);
    expect(paramsSummary({ a: 1, b: 2, c: 3 }, 8)).toBe("a=1 b=2…");
    expect(paramsSummary(null)).toBe("");
  });
});

describe("status colours", () => {
  it("maps every status to its own CSS variable", () => {
    const colors = RUN_STATUSES.map(statusColor);
    expect(new Set(colors).size).toBe(RUN_STATUSES.length);
    expect(statusColor("running")).toBe("var(--st-running)");
    expect(statusColor("bogus")).toBe("var(--st-unknown)");
  });
  it("knows which statuses are final and which actions apply", () => {
    expect(RUN_STATUSES.filter(isTerminal)).toEqual(["succeeded", "failed", "cancelled"]);
    expect(RUN_STATUSES.filter(canCancel)).toEqual(["queued", "claimed", "running"]);
    expect(RUN_STATUSES.filter(canRetry)).toEqual(["succeeded", "failed", "cancelled"]);
  });
});

describe("formatBytes", () => {
  it("uses binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(65_536)).toBe("64.0 KiB");
    expect(formatBytes(50 * 1024 * 1024)).toBe("50.0 MiB");
  });
});
