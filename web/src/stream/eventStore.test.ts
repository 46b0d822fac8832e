import { describe, expect, it } from "vitest";
import { EventStore } from "./eventStore";
import { ev, flush } from "../test/fakes";

describe("EventStore", () => {
  it("keeps events in seq order, once each, newest `capacity`", async () => {
    const s = new EventStore(3);
    let notified = 0;
    s.subscribe(() => (notified += 1));
    s.merge([ev("submitted", { seq: 2 }), ev("claimed", { seq: 3 })]);
    s.merge([ev("submitted", { seq: 1 }), ev("claimed", { seq: 3 })]);
    expect(s.getSnapshot().map((e) => e.seq)).toEqual([1, 2, 3]);
    s.merge([ev("started", { seq: 4 })]);
    expect(s.getSnapshot().map((e) => e.seq)).toEqual([2, 3, 4]);
    await flush();
    expect(notified).toBe(1);
  });
});
