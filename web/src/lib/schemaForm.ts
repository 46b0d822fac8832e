/**
 * Turns a task's params JSON Schema (as msgspec or pydantic emit it) into form fields, and form
 * values back into params. The server stays the judge: values that do not parse are sent as
 * typed so its 422 names the field; local hints only help while typing.
 */
import type { JsonObject, JsonSchema, JsonValue } from "../api/types";

export type FieldKind = "string" | "integer" | "number" | "boolean" | "enum" | "json";

export interface FieldSpec {
  name: string;
  label: string;
  kind: FieldKind;
  required: boolean;
  nullable: boolean;
  description: string | null;
  defaultValue: JsonValue | undefined;
  options: JsonValue[];
  schema: JsonSchema;
}

export type FormValues = Record<string, string | boolean>;

/** Follows a local `$ref` (`#/$defs/X` or `#/definitions/X`) against the root document. */
export function deref(schema: JsonSchema, root: JsonSchema): JsonSchema {
  let s = schema;
  for (let i = 0; i < 16 && s.$ref; i++) {
    const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
    const target = m ? (m[1] === "$defs" ? root.$defs : root.definitions)?.[decodeURIComponent(m[2]!)] : undefined;
    if (!target) break;
    const { $ref: _ignored, ...rest } = s;
    void _ignored;
    s = { ...target, ...rest };
  }
  if (s.allOf && s.allOf.length === 1 && s.allOf[0]) s = { ...deref(s.allOf[0], root), ...s, allOf: undefined };
  return s;
}

function unwrapNullable(s: JsonSchema, root: JsonSchema): { schema: JsonSchema; nullable: boolean } {
  const variants = s.anyOf ?? s.oneOf;
  if (variants) {
    const nonNull = variants.filter((v) => v.type !== "null");
    if (nonNull.length === 1 && nonNull[0]) {
      return { schema: { ...deref(nonNull[0], root), default: s.default, description: s.description ?? nonNull[0].description, title: s.title }, nullable: nonNull.length < variants.length };
    }
    return { schema: s, nullable: nonNull.length < variants.length };
  }
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t) => t !== "null");
    return { schema: { ...s, type: types.length === 1 ? types[0] : types }, nullable: types.length < s.type.length };
  }
  return { schema: s, nullable: false };
}

function kindOf(s: JsonSchema): FieldKind {
  if (s.enum && s.enum.length > 0) return "enum";
  switch (s.type) {
    case "string":
      return "string";
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    default:
      return "json";
  }
}

function humanize(name: string): string {
  const t = name.replace(/[_-]+/g, " ");
  return t.charAt(0).toUpperCase() + t.slice(1);
}

export function fieldsFromSchema(rootSchema: JsonSchema | null | undefined): FieldSpec[] {
  if (!rootSchema) return [];
  const root = deref(rootSchema, rootSchema);
  const required = new Set(root.required ?? []);
  return Object.entries(root.properties ?? {}).map(([name, raw]) => {
    const { schema, nullable } = unwrapNullable(deref(raw, rootSchema), rootSchema);
    return {
      name,
      label: schema.title ?? humanize(name),
      kind: kindOf(schema),
      required: required.has(name),
      nullable,
      description: schema.description ?? null,
      defaultValue: raw.default ?? schema.default,
      options: schema.enum ?? [],
      schema,
    };
  });
}

export function initialValues(fields: FieldSpec[]): FormValues {
  const v: FormValues = {};
  for (const f of fields) {
    const d = f.defaultValue;
    if (f.kind === "boolean") v[f.name] = d === true;
    else if (d === undefined || d === null) v[f.name] = "";
    else if (f.kind === "json") v[f.name] = JSON.stringify(d);
    else if (f.kind === "enum") v[f.name] = JSON.stringify(d);
    else v[f.name] = String(d);
  }
  return v;
}

export interface Coerced {
  params: JsonObject;
  /** Local hints by field name; the server's 422 is authoritative. */
  hints: Record<string, string>;
}

export function coerce(fields: FieldSpec[], values: FormValues): Coerced {
  const params: JsonObject = {};
  const hints: Record<string, string> = {};
  for (const f of fields) {
    const raw = values[f.name];
    if (f.kind === "boolean") {
      params[f.name] = raw === true;
      continue;
    }
    const text = typeof raw === "string" ? raw : "";
    if (text.trim() === "" && f.kind !== "string") {
      if (f.required && !f.nullable) hints[f.name] = "required";
      else if (f.required) params[f.name] = null;
      continue;
    }
    if (text === "" && f.kind === "string" && !f.required) continue;
    switch (f.kind) {
      case "string":
        params[f.name] = text;
        break;
      case "integer":
      case "number": {
        const n = Number(text.trim());
        const ok = Number.isFinite(n) && (f.kind === "number" || Number.isInteger(n));
        params[f.name] = ok ? n : text;
        if (!ok) hints[f.name] = `expected ${f.kind === "integer" ? "an integer" : "a number"}`;
        else if (f.schema.minimum !== undefined && n < f.schema.minimum) hints[f.name] = `must be ≥ ${f.schema.minimum}`;
        else if (f.schema.maximum !== undefined && n > f.schema.maximum) hints[f.name] = `must be ≤ ${f.schema.maximum}`;
        break;
      }
      case "enum":
      case "json":
        try {
          params[f.name] = JSON.parse(text) as JsonValue;
        } catch {
          params[f.name] = text;
          if (f.kind === "json") hints[f.name] = "not valid JSON";
        }
        break;
    }
  }
  return { params, hints };
}
