"""parent -> child -> grandchild that calls setsid() and leaves the process group; all sleep.

Each process writes its pid to $TASKHUB_RUN_DIR/pids (one line each, "role pid") once it is set
up, so a test knows the tree is complete. With --retry-seconds S, attempts after the first live S
seconds instead. With --ignore-term, SIGTERM is ignored but noted in
$TASKHUB_RUN_DIR/term (a test can see a kill has begun).
"""

import os
import signal
import sys
import time


def note(name: str, text: str) -> None:
    with open(os.path.join(os.environ["TASKHUB_RUN_DIR"], name), "a") as f:
        f.write(text + "\n")


def main() -> None:
    seconds = float(sys.argv[1])
    if "--retry-seconds" in sys.argv and int(os.environ["TASKHUB_ATTEMPT"]) > 1:
        seconds = float(sys.argv[sys.argv.index("--retry-seconds") + 1])
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, lambda *_: note("term", str(os.getpid())))
    role = "parent"
    if os.fork() == 0:
        role = "child"
        if os.fork() == 0:
            os.setsid()
            role = "grandchild"
    note("pids", f"{role} {os.getpid()}")
    print(f"{role} {os.getpid()} sleeping", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # a loop: an ignored SIGTERM interrupts sleep()
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
    if role == "parent":
        os.wait()


if __name__ == "__main__":
    main()
