"""Launch the API for integration tests: `python -m tests.integration.api_server`.

Settings come from the usual TASKHUB_* variables (load_settings); test-only knobs, passed through
`settings.extra`, come from TASKHUB_TEST_* variables: SSE_KEEPALIVE_S, SSE_QUEUE_SIZE, LOG_POLL_S; ACCESS_LOG=1 turns
uvicorn's access log on.
"""

from __future__ import annotations

import os
import sys

from taskhub.api.server import run_api
from taskhub.settings import load_settings

KNOBS = {
    "TASKHUB_TEST_SSE_KEEPALIVE_S": "sse_keepalive_s",
    "TASKHUB_TEST_SSE_QUEUE_SIZE": "sse_queue_size",
    "TASKHUB_TEST_LOG_POLL_S": "log_poll_s",
}


def main() -> int:
    extra = {key: os.environ[var] for var, key in KNOBS.items() if os.environ.get(var)}
    settings = load_settings(extra=extra)
    return run_api(settings, access_log=os.environ.get("TASKHUB_TEST_ACCESS_LOG") == "1")


if __name__ == "__main__":
    sys.exit(main())
