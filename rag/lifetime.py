"""Child processes that must not outlive the process that started them (the BM25 helper, a load test's server).

`python -m rag.lifetime PID MODULE ARG…` runs MODULE as `python -m MODULE ARG…` would, in a process that
ends when process PID does: the load test starts `rag chat` so without importing the CLI it belongs to.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time


def tie_to_parent(parent: int, signum: int, poll_seconds: float) -> bool:
    """Make this process end as soon as `parent` is gone; return False when it is gone already.

    On Linux the kernel sends `signum` when the parent dies (PR_SET_PDEATHSIG; strictly, when the
    parent *thread* that started this process ends, so the starter must wait on that thread).
    Elsewhere, and as a backstop, a thread checks the parent pid every `poll_seconds` and exits.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    if os.getppid() != parent:
        return False
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return True


def run_tied(argv: list[str]) -> int:
    """Run module `argv[1]` as __main__ with arguments `argv[2:]`, ending with process `argv[0]`; return its exit code.

    The starter's stop() ends the child on every way out that Python sees (errors, Ctrl+C); this covers
    the starter being killed by a signal.
    """
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m rag.lifetime PARENT_PID MODULE [ARG…]", file=sys.stderr)
        return 2
    if not tie_to_parent(int(argv[0]), signal.SIGTERM, poll_seconds=1.0):
        return 1
    sys.argv = [argv[1], *argv[2:]]
    try:
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(run_tied(sys.argv[1:]))
