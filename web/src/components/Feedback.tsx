/** Loading and error placeholders shared by every view. */
import { ApiError } from "../api/client";

export function Loading({ what = "Loading" }: { what?: string }) {
  return <p className="muted">{what}…</p>;
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const text = error instanceof ApiError ? error.detail : error instanceof Error ? error.message : String(error);
  return (
    <div className="error-box" role="alert">
      {error instanceof ApiError ? `${error.status}: ` : ""}
      {text}
    </div>
  );
}
