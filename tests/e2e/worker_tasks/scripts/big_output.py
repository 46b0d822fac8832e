"""Writes exactly MIB MiB to stdout: 100-byte numbered lines, one write(2) each, then a short tail.

The content is a pure function of MIB (tests rebuild it to compare byte for byte). With --result S,
a `::taskhub::` result line follows it, S seconds later.
"""

import os
import sys
import time

LINE = 100
RESULT_LINE = b'\n::taskhub:: {"type": "result", "value": "done"}\n'


def content(mib: int) -> bytes:
    total = mib * 1024 * 1024
    lines = b"".join(b"%09d " % i + b"x" * (LINE - 11) + b"\n" for i in range(total // LINE))
    return lines + b"t" * (total % LINE)


def main() -> None:
    data = memoryview(content(int(sys.argv[1])))
    for start in range(0, len(data), LINE):
        os.write(1, data[start : start + LINE])
    if "--result" in sys.argv:
        time.sleep(float(sys.argv[sys.argv.index("--result") + 1]))
        os.write(1, RESULT_LINE)


if __name__ == "__main__":
    main()
