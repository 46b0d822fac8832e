"""Runs `steps` steps of `delay` seconds each, reporting progress, then writes report.txt.

Plain python3, no taskhub import: structured lines are printed by hand.
"""

import argparse
import json
import os
import sys
import time


def emit(payload: dict[str, object]) -> None:
    print("::taskhub::", json.dumps(payload), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args()
    started = time.monotonic()
    for step in range(1, args.steps + 1):
        time.sleep(args.delay)
        print(f"step {step}/{args.steps} done", flush=True)
        emit({"type": "progress", "pct": round(100 * step / args.steps, 2), "message": f"step {step}/{args.steps}"})
    artifacts = os.environ.get("TASKHUB_ARTIFACTS_DIR")
    if not artifacts:
        print("TASKHUB_ARTIFACTS_DIR is not set; writing report.txt in the current directory", file=sys.stderr)
        artifacts = "."
    os.makedirs(artifacts, exist_ok=True)
    elapsed = time.monotonic() - started
    with open(os.path.join(artifacts, "report.txt"), "w", encoding="utf-8") as f:
        f.write(f"steps: {args.steps}\ndelay: {args.delay}\nelapsed_s: {elapsed:.3f}\n")
    emit({"type": "artifact", "name": "report.txt", "description": "Summary of the steps run"})
    emit({"type": "result", "value": {"steps": args.steps, "elapsed_s": round(elapsed, 3)}})


if __name__ == "__main__":
    main()
