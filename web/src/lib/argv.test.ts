import { describe, expect, it } from "vitest";
import { formatArgv } from "./argv";

describe("formatArgv", () => {
  it("quotes only what a shell would split or expand", () => {
    expect(formatArgv(["python3", "tasks/scripts/hello.py", "--target", "big world", "--times", "3"])).toBe(
      "python3 tasks/scripts/hello.py --target 'big world' --times 3",
    );
    expect(formatArgv(["echo", "it's", "$HOME", ""])).toBe(`echo 'it'\\''s' '$HOME' ''`);
  });
});
