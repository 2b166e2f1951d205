"""The text a converted file (PDF, Word, HTML, spreadsheet, image) is stored as, with its regions and metadata.

Conversions build the stored text piece by piece with `TextBuilder`, which records where each page,
table and row lands, so citations can name them; `Converted.meta_json` is what the conversion cache and
`rag.load` read back beside the text. Every piece added is charged to the conversion's `Budget`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from rag.convert.limits import Budget
from rag.types import Region


@dataclass(frozen=True)
class Converted:
    """A conversion's result: the text to store, its regions (spans of that text) and the file's own metadata."""

    text: str
    regions: tuple[Region, ...] = ()
    title: str = ""
    date: str | None = None
    source: str = ""
    notes: tuple[str, ...] = ()  # what the knowledge-base list shows in 备注 ("12页，第3–5页经OCR识别")

    def meta_json(self) -> bytes | None:
        """Return the metadata file's bytes, or None when there is nothing to keep beside the text."""
        if not (self.regions or self.title or self.date or self.notes):
            return None
        regions = [[r.kind, r.start, r.end, r.label] + ([round(r.confidence, 3)] if r.confidence is not None else [])
                   for r in self.regions]
        data = {"source": self.source, "title": self.title, "date": self.date, "notes": list(self.notes),
                "regions": regions}
        return json.dumps(data, ensure_ascii=False).encode("utf-8")

    def with_title_line(self) -> Converted:
        """Return this text led by its title line (the loader takes the first heading-like line as title)."""
        title = " ".join(self.title.split())
        if not title or self.text.startswith(title):
            return self
        shift = len(title) + 2
        regions = tuple(Region(r.kind, r.start + shift, r.end + shift, r.label, r.confidence) for r in self.regions)
        return Converted(f"{title}\n\n{self.text}", regions, self.title, self.date, self.source, self.notes)


@dataclass
class TextBuilder:
    """Accumulate stored text and the regions of its pieces."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    regions: list[Region] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)

    def add(self, text: str, separator: str = "\n\n") -> tuple[int, int]:
        """Append `text` (after `separator` unless first); return its span in the stored text."""
        self.budget.emit(text)
        if self.parts and separator:
            self.parts.append(separator)
            self.size += len(separator)
        start = self.size
        self.parts.append(text)
        self.size += len(text)
        return start, self.size

    def mark(self, kind: str, span: tuple[int, int], label: str = "", confidence: float | None = None) -> None:
        """Record a region over `span` (ignored when empty)."""
        if span[1] > span[0]:
            self.regions.append(Region(kind, span[0], span[1], label, confidence))

    @property
    def text(self) -> str:
        return "".join(self.parts)
