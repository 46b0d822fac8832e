#!/usr/bin/env bash
# Install what the tests need and run every suite: lint, types, Python tests, web tests.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$TASKHUB_SRC"
sync_env
echo "== ruff"; "$UV" run --locked ruff check taskhub tests tasks
echo "== mypy"; "$UV" run --locked mypy
# The browser tests drive Debian's chromium (never a downloaded browser) and need the built UI.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (Debian package) for the browser tests"
  if command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null || {
      echo "error: could not install chromium; install it (apt-get install chromium) and retry" >&2; exit 1; }
  else
    echo "error: chromium is required for the browser tests" >&2; exit 1
  fi
fi
if [ -f web/package.json ]; then
  command -v npm >/dev/null 2>&1 || { echo "error: npm is required for the web tests" >&2; exit 1; }
  echo "== web: install, typecheck, unit tests, build"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck && npm test --silent \
    && npm run --silent build)
fi
echo "== pytest"; "$UV" run --locked pytest -q -p no:cacheprovider "$@"
