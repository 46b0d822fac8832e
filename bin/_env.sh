# Sourced by the bin/ scripts: find or install uv, and sync the locked environment.
# uv comes from PyPI: the system pip when it allows it, else a private bootstrap venv.
TASKHUB_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export UV_PROJECT="$TASKHUB_SRC"

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=$(command -v uv); return 0; fi
  local boot="$TASKHUB_SRC/.bootstrap"
  if [ -x "$boot/bin/uv" ]; then UV="$boot/bin/uv"; return 0; fi
  local py
  py=$(command -v python3 || command -v python) || { echo "error: python3 is required" >&2; return 1; }
  echo "installing uv from PyPI into $boot ..." >&2
  "$py" -m venv "$boot" >&2 && "$boot/bin/pip" install --quiet uv >&2 || {
    echo "error: could not install uv (pip install uv failed); install it and retry" >&2; return 1; }
  UV="$boot/bin/uv"
}

sync_env() {
  ensure_uv || return 1
  (cd "$TASKHUB_SRC" && "$UV" sync --locked --quiet "$@") || {
    echo "error: 'uv sync --locked' failed; see the messages above" >&2; return 1; }
  TASKHUB_PY="$TASKHUB_SRC/.venv/bin/python"
  TASKHUB_BIN="$TASKHUB_SRC/.venv/bin/taskhub"
}
