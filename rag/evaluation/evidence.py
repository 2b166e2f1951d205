"""Locating gold evidence in the indexed text, and deciding which chunks hold it.

Relevance: a retrieved chunk is relevant to a piece of gold evidence when its squashed text
contains the squashed evidence, or when its span in the cleaned document overlaps the evidence's
span (found by matching in squashed space and mapping back to cleaned offsets). Chunks overlap by
one sentence, so evidence at a chunk border is still found in the chunk that holds most of it.
"""

from __future__ import annotations

import bisect
import unicodedata
from dataclasses import dataclass

from rag import text as textmod
from rag.types import Chunk, Document

def squash_map(text: str) -> tuple[str, list[int]]:
    """Return (squash(text), offsets) with offsets[i] the index in `text` of squashed character i.

    Normalizing character by character keeps the map even where NFKC changes the length (①, ㈱).
    """
    chars: list[str] = []
    owners: list[int] = []
    for i, ch in enumerate(text):
        for out in unicodedata.normalize("NFKC", ch).lower():
            chars.append(out)
            owners.append(i)
    simplified = textmod.to_simplified("".join(chars))  # length-preserving by contract
    squashed, offsets = [], []
    for ch, owner in zip(simplified, owners):
        if not ch.isspace():
            squashed.append(ch)
            offsets.append(owner)
    return "".join(squashed), offsets


def find_spans(text: str, evidence: str) -> list[tuple[int, int]]:
    """Return every (start, end) span of `text` whose squashed form is the squashed `evidence`."""
    needle = textmod.squash(evidence)
    if not needle:
        return []
    haystack, offsets = squash_map(text)
    spans = []
    at = haystack.find(needle)
    while at >= 0:
        spans.append((offsets[at], offsets[at + len(needle) - 1] + 1))
        at = haystack.find(needle, at + 1)
    return spans


def locate(doc: Document, evidence: str) -> list[tuple[int, int]]:
    """Return the spans of `evidence` in the cleaned text of `doc` (searching the original if cleaning changed it)."""
    spans = find_spans(doc.text, evidence)
    if spans or not doc.offsets:
        return spans
    out = []
    for start, end in find_spans(doc.original, evidence):
        # offsets map cleaned → original and only grow, so bisect maps an original span back.
        s, e = bisect.bisect_left(doc.offsets, start), bisect.bisect_left(doc.offsets, end)
        if e > s:
            out.append((s, e))
    return out


@dataclass(frozen=True)
class Target:
    """One piece of gold evidence resolved against an index: its document id, squashed text and spans."""

    doc_id: str | None
    squashed: str
    spans: tuple[tuple[int, int], ...]


def covers(chunk: Chunk, target: Target, squashed_chunk: str | None = None) -> bool:
    """True when `chunk` holds `target`: its text contains the evidence or its span overlaps it."""
    squashed_chunk = textmod.squash(chunk.text) if squashed_chunk is None else squashed_chunk
    if target.squashed and target.squashed in squashed_chunk:
        return True
    return chunk.doc_id == target.doc_id and any(s < chunk.end and chunk.start < e for s, e in target.spans)
