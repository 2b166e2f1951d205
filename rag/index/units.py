"""What is indexed: the embedded units (each chunk and each of its sentences) and their texts."""

from __future__ import annotations

import unicodedata

from rag import text as textmod
from rag.types import Chunk


def dense_units(chunks: list[Chunk]) -> list[tuple[int, int, int]]:
    """Return the embedded units: each whole chunk and each of its sentences (chunk-local spans).

    A 300-character passage blurs the one fact a question asks about; its sentences keep it
    sharp. A chunk's dense score is its best unit, and the answerer reuses the sentence vectors.
    """
    units = []
    for position, chunk in enumerate(chunks):
        units.append((position, 0, len(chunk.text)))
        spans = list(textmod.sentence_spans(chunk.text))
        if len(spans) > 1:
            units.extend((position, s, e) for s, e in spans)
    return units


def unit_text(chunk: Chunk, start: int, end: int) -> str:
    """Return the text of a unit before embedding: a whole chunk with its heading, or the sentence."""
    if start == 0 and end == len(chunk.text):
        return passage_text(chunk)
    return chunk.text[start:end]


def embedding_text(text: str) -> str:
    """Return the form of `text` that is embedded: NFKC and Simplified, case and spacing kept."""
    return textmod.to_simplified(unicodedata.normalize("NFKC", text))


def passage_text(chunk: Chunk) -> str:
    """Return a chunk's text as it is indexed: with its section heading in front."""
    # The section heading helps a passage that never names its subject match the question.
    if chunk.heading and not chunk.text.startswith(chunk.heading):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text
