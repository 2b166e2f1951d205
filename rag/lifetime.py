"""Child processes that must not outlive the process that started them (the BM25 helper, a load test's server)."""

from __future__ import annotations

import os
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
