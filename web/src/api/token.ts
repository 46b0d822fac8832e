/** The API token (SPEC 7), kept in localStorage, with a tiny subscription for React. */

const KEY = "taskhub.token";
type Listener = () => void;

const listeners = new Set<Listener>();
let needsToken = false;

function storage(): Storage | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return storage()?.getItem(KEY) ?? null;
}

export function setToken(token: string | null): void {
  const s = storage();
  if (token) s?.setItem(KEY, token);
  else s?.removeItem(KEY);
  needsToken = false;
  emit();
}

/** Called by the client when the API answers 401: the UI shows the token prompt. */
export function markTokenRequired(): void {
  if (needsToken) return;
  needsToken = true;
  emit();
}

export function isTokenRequired(): boolean {
  return needsToken;
}

export function subscribeToken(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(): void {
  for (const l of listeners) l();
}
