import { describe, expect, it } from "vitest";
import { appendText, prependText, searchLines, unseenPart, visibleCount } from "./logLines";

describe("log lines", () => {
  it("joins chunks that split a line", () => {
    const lines: string[] = [];
    appendText(lines, "step 1\nst");
    appendText(lines, "ep 2\n");
    appendText(lines, "step 3");
    expect(lines).toEqual(["step 1", "step 2", "step 3"]);
    expect(visibleCount(lines)).toBe(3);
    appendText(lines, "\n");
    expect(visibleCount(lines)).toBe(3);
  });

  it("prepends an earlier chunk onto the partial first line", () => {
    const lines = ["ne 3", "line 4", ""];
    prependText(lines, "line 1\nline 2\nli");
    expect(lines).toEqual(["line 1", "line 2", "line 3", "line 4", ""]);
  });

  it("skips bytes already held when a chunk overlaps, counting UTF-8 bytes", () => {
    expect(unseenPart(10, "abc", 10)).toBe("abc");
    expect(unseenPart(8, "abcdef", 10)).toBe("cdef");
    expect(unseenPart(0, "abc", 10)).toBe("");
    expect(unseenPart(0, "é!", 2)).toBe("!");
  });

  it("finds lines case-insensitively", () => {
    expect(searchLines(["Error a", "ok", "error b"], "ERROR")).toEqual([0, 2]);
    expect(searchLines(["x"], "")).toEqual([]);
  });
});
