"""Prints progress lines as fast as it can, each flushed, ending at exactly 100%."""

import json
import sys

count = int(sys.argv[1])
for i in range(1, count + 1):
    line = json.dumps({"type": "progress", "pct": 100 * i / count, "message": f"{i}/{count}"})
    print("::taskhub::", line, flush=True)
