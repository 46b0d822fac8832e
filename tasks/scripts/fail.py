"""Prints a message to stderr and exits with the given code (a task that fails on purpose)."""

import argparse
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", type=int, default=1)
    parser.add_argument("--message", default="boom")
    args = parser.parse_args()
    print("about to fail", flush=True)
    print(args.message, file=sys.stderr, flush=True)
    sys.exit(args.code)


if __name__ == "__main__":
    main()
