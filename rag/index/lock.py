"""One builder per index folder at a time (flock), and removing what killed builds left behind."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path

from rag.embed import EmbeddingCache
from rag.index.manifest import IndexProblem

log = logging.getLogger(__name__)

LOCK_FILE = "build.lock"
# A second builder waits this long for the first (a seed build takes ~10 s; a large corpus minutes).
BUILD_LOCK_TIMEOUT = 600.0


class IndexBusy(IndexProblem):
    """Another process is building the same index folder."""


@contextlib.contextmanager
def build_lock(index_dir: Path, timeout: float = BUILD_LOCK_TIMEOUT):
    """Hold the build lock of `index_dir`; wait up to `timeout` s for another holder, then raise IndexBusy.

    flock, not a lock file's existence: the kernel drops the lock when its holder dies, even by kill -9,
    so nothing stale is ever left to break. The file says who holds it, for the waiter's message.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: builds are not serialized there
        yield
        return
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, waiting = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f"another build of {index_dir} is running ({_holder(fd)}); gave up after "
                                    f"{timeout:g} s: let it finish, or stop it, then run `rag index` again") from None
                if not waiting:
                    log.warning("waiting for another build of %s (%s), up to %g s", index_dir, _holder(fd), timeout)
                    waiting = True
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": since}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 200, 0))
        return f"pid {int(holder['pid'])}, since {str(holder['since'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"  # it has just taken the lock and not yet written its name


def clean_leftovers(index_dir: Path) -> list[Path]:
    """Remove what killed builds left in `index_dir`, unless a build is running now; return what went."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    try:
        with build_lock(index_dir, timeout=0):
            return remove_leftovers(index_dir)
    except IndexBusy:
        return []  # its temporary files are live
    except OSError as exc:  # a read-only index can still be served
        log.info("could not clean %s: %s", index_dir, exc)
        return []


def remove_leftovers(index_dir: Path) -> list[Path]:
    """Remove what killed builds left in `index_dir` (call with the build lock held); return what went."""
    # Called with the build lock held, so no temporary build folder or file here belongs to a live build.
    builds = index_dir / "builds"
    removed = [p for p in builds.glob(".tmp-*")] if builds.is_dir() else []
    removed += list(index_dir.glob(".CURRENT-*"))
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if (index_dir / "cache").is_dir():  # may be shared (rag.evaluation.runner links it): only files of dead writers
        removed += EmbeddingCache.remove_leftovers(index_dir / "cache")
    if removed:
        log.info("removed %d leftovers of killed builds in %s", len(removed), index_dir)
    return removed
