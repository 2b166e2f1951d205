"""The plain records carried between pipeline stages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Mode(str, Enum):
    """How candidates are retrieved."""

    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"


class AnswerMode(str, Enum):
    """Who writes the answer."""

    READER = "reader"  # the trained reader: a short answer and the sentence that supports it
    EXTRACTIVE = "extractive"  # the best sentences, picked by hand-weighted features
    LLM = "llm"


@dataclass(frozen=True)
class Document:
    """One source file: its original text, the cleaned text, and a map between them.

    `offsets[i]` is the character offset in `original` of cleaned character `i`; offsets count
    characters of the decoded file, so a span can be highlighted in the file as stored.
    """

    id: str
    file: str
    title: str
    date: str | None
    sha256: str
    encoding: str
    original: str
    text: str
    offsets: tuple[int, ...]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Return the (start, end) span in `original` covering cleaned characters [start, end)."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"span {start}:{end} outside document {self.id} ({len(self.text)} chars)")
        return self.offsets[start], self.offsets[end - 1] + 1


@dataclass(frozen=True)
class Chunk:
    """A retrievable passage: a run of whole sentences of one document."""

    id: str
    doc_id: str
    position: int
    text: str
    start: int
    end: int
    orig_start: int
    orig_end: int
    heading: str


@dataclass(frozen=True)
class Hit:
    """A chunk returned by retrieval, with its fused score and the per-retriever ranks."""

    chunk: Chunk
    score: float
    rank: int
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True)
class Citation:
    """Where one claim of an answer comes from: the supporting sentence and its spans."""

    n: int
    doc_id: str
    file: str
    title: str
    date: str | None
    chunk_id: str
    sentence: str
    start: int
    end: int
    orig_start: int
    orig_end: int
    # The short answer inside the sentence (reader answers only): cleaned-text and original-file spans.
    answer_start: int | None = None
    answer_end: int | None = None
    answer_orig_start: int | None = None
    answer_orig_end: int | None = None


@dataclass(frozen=True)
class Answer:
    """The result of answering one question."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    passages: tuple[Hit, ...]
    abstained: bool
    mode: AnswerMode
    retrieval_mode: Mode
    confidence: float = 0.0
    resolved_question: str = ""
    notes: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    short: str = ""  # the short answer ("200亿元") when the reader found one; `text` starts with it

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the answer."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
