"""Fails on the first N attempts (from $TASKHUB_ATTEMPT), succeeds after."""

import os
import sys

attempt = int(os.environ["TASKHUB_ATTEMPT"])
if attempt <= int(sys.argv[1]):
    print(f"attempt {attempt} failing")
    print(f"attempt {attempt} error", file=sys.stderr)
    sys.exit(1)
print(f"attempt {attempt} ok")
