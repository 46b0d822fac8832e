import { describe, expect, it } from "vitest";
import { coerce, fieldsFromSchema, initialValues } from "./schemaForm";
import type { JsonSchema } from "../api/types";

const hello: JsonSchema = {
  title: "Params",
  type: "object",
  properties: { target: { type: "string" }, times: { type: "integer", default: 1 } },
  required: ["target"],
};

describe("fieldsFromSchema", () => {
  it("reads names, kinds, defaults and required", () => {
    const f = fieldsFromSchema(hello);
    expect(f.map((x) => [x.name, x.kind, x.required, x.defaultValue])).toEqual([
      ["target", "string", true, undefined],
      ["times", "integer", false, 1],
    ]);
    expect(initialValues(f)).toEqual({ target: "", times: "1" });
  });

  it("follows $ref into $defs and unwraps nullable unions and enums", () => {
    const s: JsonSchema = {
      $ref: "#/$defs/P",
      $defs: {
        P: {
          type: "object",
          properties: {
            mode: { $ref: "#/$defs/Mode" },
            limit: { anyOf: [{ type: "integer" }, { type: "null" }], default: null },
            tags: { type: "array", items: { type: "string" } },
            dry: { type: "boolean", default: true },
          },
          required: ["mode"],
        },
        Mode: { enum: ["fast", "slow"] },
      },
    };
    const f = fieldsFromSchema(s);
    expect(f.map((x) => [x.name, x.kind, x.nullable])).toEqual([
      ["mode", "enum", false],
      ["limit", "integer", true],
      ["tags", "json", false],
      ["dry", "boolean", false],
    ]);
    expect(f[0]!.options).toEqual(["fast", "slow"]);
  });
});

describe("coerce", () => {
  const f = fieldsFromSchema(hello);
  it("turns form text into typed params and leaves defaults to the server", () => {
    expect(coerce(f, { target: "world", times: "3" })).toEqual({ params: { target: "world", times: 3 }, hints: {} });
    expect(coerce(f, { target: "world", times: "" }).params).toEqual({ target: "world" });
  });
  it("sends values that do not parse as typed, so the server's 422 names the field", () => {
    const c = coerce(f, { target: "x", times: "abc" });
    expect(c.params).toEqual({ target: "x", times: "abc" });
    expect(c.hints).toEqual({ times: "expected an integer" });
    expect(coerce(f, { target: "x", times: "1.5" }).hints.times).toBe("expected an integer");
  });
  it("checks bounds and JSON fields", () => {
    const g = fieldsFromSchema({
      type: "object",
      properties: { n: { type: "number", minimum: 0, maximum: 1 }, xs: { type: "array" } },
      required: ["n"],
    });
    expect(coerce(g, { n: "2", xs: "[1,2]" })).toEqual({ params: { n: 2, xs: [1, 2] }, hints: { n: "must be ≤ 1" } });
    expect(coerce(g, { n: "", xs: "[oops" }).hints).toEqual({ n: "required", xs: "not valid JSON" });
  });
});
