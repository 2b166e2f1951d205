"""Conversions of a documents folder's files, kept in the index folder by content hash and converter version.

A rebuild converts only new or changed files: an OCR'd scan is read once. Originals are never
written. Each entry is written to a temporary name and renamed, so a kill half-way leaves either
no entry or a whole one; entries no build uses are removed after a build succeeds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

from rag.convert.limits import NO_OCR, ConversionError
from rag.convert.result import Converted
from rag.types import Region

log = logging.getLogger(__name__)


class ConversionCache:
    """Converted texts (or refusals) of files, one JSON file per key, under `folder`. Cheap to create."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(data: bytes, version: str) -> str:
        """Return the cache key of a file's bytes converted by converter `version`."""
        return hashlib.sha256(version.encode() + b"\0" + data).hexdigest()

    def get(self, key: str) -> Converted | ConversionError | None:
        """Return the stored conversion (or refusal) under `key`; None when absent or unreadable."""
        path = self.folder / f"{key}.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if "error" in raw:
                return ConversionError(raw["error"], raw["kind"])
            regions = tuple(Region(k, s, e, label, conf) for k, s, e, label, conf in raw["regions"])
            return Converted(raw["text"], regions, raw["title"], raw["date"], raw["source"], tuple(raw["notes"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged entry is converted again
            log.warning("ignored conversion cache entry %s: %s", path.name, exc)
            return None

    def put(self, key: str, result: Converted | ConversionError) -> None:
        """Store a conversion, or a refusal that converting again would repeat (not a missing OCR extra)."""
        if isinstance(result, ConversionError):
            if result.kind == NO_OCR:
                return  # installing the extra must make the next build read the scan
            raw = {"error": str(result), "kind": result.kind}
        else:
            raw = {"text": result.text, "title": result.title, "date": result.date, "source": result.source,
                   "notes": list(result.notes),
                   "regions": [[r.kind, r.start, r.end, r.label, r.confidence] for r in result.regions]}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.part"
        tmp.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.folder / f"{key}.json")

    def prune(self, keep: set[str]) -> None:
        """Remove entries (and leftovers of killed writes) whose key is not in `keep`."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.name.startswith(".") or path.name.removesuffix(".json") not in keep:
                path.unlink(missing_ok=True)
