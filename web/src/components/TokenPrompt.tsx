/** Asks for the API token once the API answers 401; keeps it in localStorage. */
import { useState, useSyncExternalStore, type FormEvent } from "react";
import { isTokenRequired, setToken, subscribeToken } from "../api/token";

export function TokenPrompt() {
  const required = useSyncExternalStore(subscribeToken, isTokenRequired, isTokenRequired);
  const [value, setValue] = useState("");
  if (!required) return null;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) setToken(value.trim());
  };
  return (
    <div className="modal-back">
      <form className="modal" onSubmit={submit} aria-label="API token">
        <h2 style={{ marginTop: 0 }}>API token required</h2>
        <p className="muted">This TaskHub requires a token (TASKHUB_TOKEN). It is kept in this browser only.</p>
        <input type="password" autoFocus style={{ width: "100%" }} value={value} onChange={(e) => setValue(e.target.value)} placeholder="token" />
        <div className="row" style={{ marginTop: 12, justifyContent: "flex-end" }}>
          <button type="submit" className="primary">Save</button>
        </div>
      </form>
    </div>
  );
}
