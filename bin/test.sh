#!/usr/bin/env bash
# Install what the tests need and run every suite: lint, types, Python tests, web tests.
set -euo pipefail
source "$(dirname "$0")/_env.sh"
cd "$TASKHUB_SRC"
sync_env
echo "== ruff"; "$UV" run --locked ruff check taskhub tests tasks
echo "== mypy"; "$UV" run --locked mypy
echo "== pytest"; "$UV" run --locked pytest -q -p no:cacheprovider "$@"
if [ -f web/package.json ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "== web"
    (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck && npm test --silent)
  else
    echo "error: npm is required for the web tests" >&2; exit 1
  fi
fi
