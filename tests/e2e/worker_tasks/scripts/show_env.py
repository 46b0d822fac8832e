"""Reports what SPEC section 2 promises a task sees, as the run's result."""

import json
import os
import sys

NAMES = ("TASKHUB_RUN_ID", "TASKHUB_ATTEMPT", "TASKHUB_RUN_DIR", "TASKHUB_ARTIFACTS_DIR", "PYTHONUNBUFFERED", "PATH")
value = {name: os.environ.get(name) for name in NAMES}
value["cwd"] = os.getcwd()
value["executable"] = sys.executable
value["stdin_is_devnull"] = os.path.samestat(os.fstat(0), os.stat(os.devnull))
# Every descriptor past stdio, and what it is: nothing of the worker's may leak into a run.
extra = {}
for fd in os.listdir("/proc/self/fd"):
    if int(fd) > 2:
        try:
            extra[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the listing's own descriptor, closed by now
value["extra_fds"] = extra
print("::taskhub::", json.dumps({"type": "result", "value": value}), flush=True)
