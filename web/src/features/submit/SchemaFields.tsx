/** Inputs generated from the params JSON Schema; text inputs for numbers so the server judges. */
import type { FieldSpec, FormValues } from "../../lib/schemaForm";

interface Props {
  fields: FieldSpec[];
  values: FormValues;
  onChange: (name: string, value: string | boolean) => void;
  /** Messages by field: local hints and the server's 422. */
  errors: Record<string, string>;
}

export function SchemaFields({ fields, values, onChange, errors }: Props) {
  if (fields.length === 0) return <p className="muted">This task takes no params.</p>;
  return (
    <>
      {fields.map((f) => {
        const id = `param-${f.name}`;
        const err = errors[f.name];
        const common = { id, name: f.name, "aria-invalid": Boolean(err), className: err ? "invalid" : "" };
        const value = values[f.name];
        let input;
        if (f.kind === "boolean") {
          input = <input type="checkbox" {...common} checked={value === true} onChange={(e) => onChange(f.name, e.target.checked)} />;
        } else if (f.kind === "enum") {
          input = (
            <select {...common} value={String(value ?? "")} onChange={(e) => onChange(f.name, e.target.value)}>
              {!f.required && <option value="">(default)</option>}
              {f.options.map((o) => (
                <option key={JSON.stringify(o)} value={JSON.stringify(o)}>{String(o)}</option>
              ))}
            </select>
          );
        } else if (f.kind === "json") {
          input = <textarea {...common} rows={3} style={{ width: "100%", fontFamily: "var(--mono)" }} value={String(value ?? "")} placeholder="JSON" onChange={(e) => onChange(f.name, e.target.value)} />;
        } else {
          input = (
            <input
              type="text"
              inputMode={f.kind === "string" ? "text" : "decimal"}
              {...common}
              style={{ width: "100%" }}
              value={String(value ?? "")}
              placeholder={f.defaultValue !== undefined && f.defaultValue !== null ? `default ${String(f.defaultValue)}` : f.kind}
              onChange={(e) => onChange(f.name, e.target.value)}
            />
          );
        }
        return (
          <div key={f.name} style={{ display: "contents" }}>
            <label htmlFor={id}>
              {f.label}
              {f.required && <span className="sev-error"> *</span>}
              <div className="hint mono">{f.name}: {f.kind}{f.nullable ? " | null" : ""}</div>
            </label>
            <div>
              {input}
              {f.description && <div className="hint">{f.description}</div>}
              {err && <div className="field-error" data-testid={`error-${f.name}`}>{err}</div>}
            </div>
          </div>
        );
      })}
    </>
  );
}
