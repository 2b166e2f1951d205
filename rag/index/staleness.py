"""Whether an index still matches its documents folder and chunking settings."""

from __future__ import annotations

from pathlib import Path

from rag.chunk import ChunkConfig


def staleness(manifest: dict, docs_dir: Path, chunking: ChunkConfig | None = None) -> list[str]:
    """Return why an index no longer matches `docs_dir` (empty when it is current)."""
    from rag.load import document_files, file_digest

    indexed = dict(manifest.get("files", {}))
    current = {}
    for name, path in document_files(Path(docs_dir)).items():
        # Only indexed files are hashed: a skipped one (a .zip, a 2 GB video) needs only to be there.
        current[name] = file_digest(path) if name in indexed else ""
    skipped = set(manifest.get("skipped", {}))
    changed = sorted(n for n in indexed if n in current and current[n] != indexed[n])
    added = sorted(n for n in current if n not in indexed and n not in skipped)
    removed = sorted(n for n in indexed if n not in current)
    reasons = []
    for items, what in ((changed, "changed"), (added, "new"), (removed, "removed")):
        if items:
            noun = "file" if len(items) == 1 else "files"
            reasons.append(f"{len(items)} {noun} {what} ({', '.join(items[:3])}{', …' if len(items) > 3 else ''})")
    if chunking is not None and manifest.get("chunking") != chunking.to_dict():
        reasons.append("chunking settings changed")
    return reasons


def stale_message(reasons: list[str]) -> str:
    """Return a one-line message telling the user what is stale and what to run."""
    return "the index is stale: " + "; ".join(reasons) + "; run `rag index`"
