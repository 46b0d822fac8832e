"""Greets a target `times` times, then reports the greeting count as the run's result.

Plain python3, no taskhub import: the structured line is printed by hand.
"""

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--times", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.times):
        print(f"Hello, {args.target}!")
    result = {"type": "result", "value": {"target": args.target, "greetings": max(args.times, 0)}}
    print("::taskhub::", json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
