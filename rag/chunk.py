"""Split cleaned documents into passages of whole sentences."""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass

from rag.text import sentence_spans
from rag.types import Chunk, Document

_SENTENCE_FINAL = "。！？!?；;…"
_SOFT_BREAK = re.compile(r"[，,、：:]")


@dataclass(frozen=True)
class ChunkConfig:
    """Chunk sizes in characters; `overlap` is how many sentences a chunk repeats from the last."""

    min_chars: int = 200
    max_chars: int = 400
    overlap: int = 1
    heading_max_chars: int = 40

    def __post_init__(self) -> None:
        if not 0 < self.min_chars <= self.max_chars:
            raise ValueError(f"need 0 < min_chars <= max_chars, got {self.min_chars} and {self.max_chars}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")

    def to_dict(self) -> dict:
        """Return the settings as a plain dict (for the manifest)."""
        return asdict(self)


def chunk_document(doc: Document, config: ChunkConfig = ChunkConfig()) -> list[Chunk]:
    """Return the chunks of `doc`: runs of whole sentences of about min..max characters."""
    text = doc.text
    units = _units(text, config.max_chars)
    headings = [_is_heading(text, s, e, config) for s, e in units]
    rows = _row_of_units(doc, units)
    spans: list[tuple[int, int]] = []  # (first unit, last unit) per chunk
    current: list[int] = []
    i = 0
    while i < len(units):
        if current:
            too_long = units[i][1] - units[current[0]][0] > config.max_chars
            at_heading = headings[i] and units[current[-1]][1] - units[current[0]][0] >= config.min_chars
            # A table row is a passage of its own ("列名：值；…"); only a caption just before it joins it.
            new_row = rows[i] != rows[current[-1]] and (rows[i] is None or not all(headings[k] for k in current))
            if too_long or at_heading or new_row:
                spans.append((current[0], current[-1]))
                carry = current[-config.overlap :] if config.overlap and not (at_heading or new_row) else []
                # Carry sentences over only while the next one still fits beside them.
                while carry and units[i][1] - units[carry[0]][0] > config.max_chars:
                    carry = carry[1:]
                current = carry
                continue
        current.append(i)
        i += 1
    if current:
        spans.append((current[0], current[-1]))

    chunks = []
    heading = ""
    heading_at = [""] * len(units)
    for k, is_head in enumerate(headings):
        if is_head:
            heading = text[units[k][0] : units[k][1]]
        heading_at[k] = heading
    for position, (first, last) in enumerate(spans):
        start, end = units[first][0], units[last][1]
        orig_start, orig_end = doc.original_span(start, end)
        chunks.append(
            Chunk(
                id=f"{doc.sha256[:12]}-{position:04d}",
                doc_id=doc.id,
                position=position,
                text=text[start:end],
                start=start,
                end=end,
                orig_start=orig_start,
                orig_end=orig_end,
                heading=heading_at[first],
            )
        )
    return chunks


def _row_of_units(doc: Document, units: list[tuple[int, int]]) -> list[int | None]:
    """Return, per unit, the index of the table row (a `row` region of the document) it lies in, else None."""
    rows = [r for r in doc.regions if r.kind == "row"]
    if not rows:
        return [None] * len(units)
    starts = [r.start for r in rows]
    out: list[int | None] = []
    for start, _ in units:
        orig = doc.offsets[start]
        k = bisect.bisect_right(starts, orig) - 1
        out.append(k if k >= 0 and orig < rows[k].end else None)
    return out


def _units(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Sentence spans, with any sentence longer than `max_chars` cut at clause breaks."""
    units = []
    for start, end in sentence_spans(text):
        if end - start <= max_chars:
            units.append((start, end))
        else:
            units.extend(_split_long(text, start, end, max_chars))
    return units


def _split_long(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    pieces = []
    while end - start > max_chars:
        window = text[start : start + max_chars]
        breaks = [m.end() for m in _SOFT_BREAK.finditer(window) if m.end() >= max_chars // 2]
        cut = start + (breaks[-1] if breaks else max_chars)
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces


def _is_heading(text: str, start: int, end: int, config: ChunkConfig) -> bool:
    """A short line of its own that does not end like a sentence."""
    line_start = start == 0 or text[start - 1] == "\n"
    line_end = end == len(text) or text[end] == "\n"
    body = text[start:end]
    return line_start and line_end and len(body) <= config.heading_max_chars and body[-1] not in _SENTENCE_FINAL
