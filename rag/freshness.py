"""Notice, cheaply, that the index on disk or the documents changed under a running server.

A long-lived process (the chat page) loads one build and serves it. Another process may meanwhile
build a newer one (`rag index`), or someone may edit, add or remove a file in the documents folder.
`FreshnessCheck.check` tells both apart at a bounded cost: it reads `CURRENT` (a few bytes) and stats
the documents folder's files; only a file whose size or modification time moved since it was last
seen is hashed again, so a check over an unchanged folder hashes nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rag.load import document_files, file_digest, meta_path

# Checks closer together than this return the previous result (a page may ask on every event).
MIN_INTERVAL = 2.0


@dataclass(frozen=True)
class DiskState:
    """What differs on disk from the loaded index: a newer live build, and changed document files."""

    newer_build: str = ""  # the build `CURRENT` names, when it is not the loaded one
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def documents_changed(self) -> bool:
        """True when a document file was edited, added or removed since the loaded index was built."""
        return bool(self.changed or self.added or self.removed)


class FreshnessCheck:
    """Compares a loaded index with its index folder and documents folder; cheap to call often."""

    def __init__(self, docs_dir: Path, index_dir: Path, min_interval: float = MIN_INTERVAL) -> None:
        self.docs_dir = Path(docs_dir)
        self.index_dir = Path(index_dir)
        self.min_interval = min_interval
        self._seen: dict[str, tuple] = {}  # name -> (size, mtime_ns[, meta size, meta mtime_ns], digest)
        self._last: tuple[float, str, DiskState] | None = None  # (when, build checked against, result)
        self._lock = threading.Lock()

    def check(self, build: Path, manifest: dict, force: bool = False) -> DiskState:
        """Return how the disk differs from the index loaded from `build` (with its `manifest`)."""
        with self._lock:
            now = time.monotonic()
            if (not force and self._last is not None and self._last[1] == str(build)
                    and now - self._last[0] < self.min_interval):
                return self._last[2]
            state = DiskState(self._newer_build(Path(build)), *self._document_changes(manifest))
            self._last = (now, str(build), state)
            return state

    def _newer_build(self, build: Path) -> str:
        try:
            name = (self.index_dir / "CURRENT").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return ""  # no pointer (or one being replaced): nothing newer to offer
        return name if name and name != build.name and (self.index_dir / "builds" / name / "manifest.json").exists() else ""

    def _document_changes(self, manifest: dict) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        indexed = dict(manifest.get("files", {}))
        skipped = set(manifest.get("skipped", {}))
        current: dict[str, str] = {}
        seen: dict[str, tuple] = {}
        try:
            paths = document_files(self.docs_dir)
        except OSError:
            paths = {}
        for name, path in paths.items():
            try:
                stat = path.stat()
                # A converted document is indexed under its text and its .meta.json together.
                meta = meta_path(path)
                meta_stat = meta.stat() if meta.is_file() else None
                signature = (stat.st_size, stat.st_mtime_ns) + ((meta_stat.st_size, meta_stat.st_mtime_ns)
                                                                if meta_stat else ())
                known = self._seen.get(name)
                # A file seen before it was indexed was never hashed ("" stands for that): once a
                # build indexes it, it must be hashed, or the build that added it looks outdated.
                if known is not None and known[:-1] == signature and (known[-1] or name not in indexed):
                    digest = known[-1]
                elif name not in indexed:  # a new or skipped file needs only to be there
                    digest = ""
                else:  # touched since last seen: the only files hashed
                    digest = file_digest(path)
            except OSError:
                continue  # removed while listing
            seen[name] = (*signature, digest)
            current[name] = digest
        self._seen = seen
        changed = sorted(n for n in indexed if n in current and current[n] != indexed[n])
        added = sorted(n for n in current if n not in indexed and n not in skipped)
        removed = sorted(n for n in indexed if n not in current)
        return tuple(changed), tuple(added), tuple(removed)
