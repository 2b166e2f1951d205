"""The plain records carried between pipeline stages."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath
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
class Region:
    """A labelled span [start, end) of a document's original text: a PDF page, a table row, an OCR line."""

    kind: str  # "page", "table", "row" or "ocr"
    start: int
    end: int
    label: str = ""  # "第3页", "工作表“产量”", "第4行"
    confidence: float | None = None  # OCR lines: the recognizer's score, 0..1


# Where a citation is, in the order a reader looks: page, then table, then row.
_LOCATION_ORDER = ("page", "table", "row")


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
    # Pages, tables, rows and OCR lines of a converted file (spans of `original`); empty for plain text.
    regions: tuple[Region, ...] = ()
    source: str = ""  # the file it was converted from ("报告.pdf"), when it was
    notes: tuple[str, ...] = ()  # what its conversion found worth saying ("PDF，12页", "2个公式单元格没有计算结果")

    def page_of(self, orig_start: int) -> int | None:
        """Return the 1-based page holding original offset `orig_start`, or None when the document has no pages."""
        pages = [r for r in self.regions if r.kind == "page"]
        for number, page in enumerate(pages, 1):
            if page.start <= orig_start < page.end:
                return number
        return None

    def location(self, orig_start: int, orig_end: int) -> str:
        """Return where original span [orig_start, orig_end) lies ("第3页", "工作表“产量” 第4行"), or ""."""
        parts = []
        for kind in _LOCATION_ORDER:
            inside = [r for r in self.regions if r.kind == kind and r.start <= orig_start < r.end]
            if not inside:
                continue
            label = inside[0].label
            if kind == "page":
                last = next((r for r in self.regions if r.kind == "page" and r.start < orig_end <= r.end), inside[0])
                if last is not inside[0] and last.label:
                    label = f"{inside[0].label}至{last.label}"
            parts.append(label)
        return " ".join(p for p in parts if p)

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
    page: int | None = None  # 1-based page of a converted PDF or scan
    location: str = ""  # "第3页", "工作表“产量” 第4行 · “2025年”列": where in the source file
    # The short answer inside the sentence (reader answers only): cleaned-text and original-file spans.
    answer_start: int | None = None
    answer_end: int | None = None
    answer_orig_start: int | None = None
    answer_orig_end: int | None = None


class Shape(str, Enum):
    """What a question asks for beyond one span (rag.compose.shapes)."""

    PLAIN = "plain"  # one fact: today's path
    COMPARISON = "comparison"  # "A和B哪个更多", "A比B多多少"
    FACTS = "facts"  # several facts at once: "A和B分别是多少"
    LIST = "list"  # "有哪些", "哪几个": every passage that answers
    QUALIFIED = "qualified"  # one fact of a named year or time ("2025年…", "目前…")


@dataclass(frozen=True)
class Part:
    """One part of a composed answer: the sub-question asked, its short answer and where it comes from."""

    question: str
    short: str  # "" when the part was not found
    citation: Citation | None = None
    note: str = ""  # why the part is missing ("资料只给出2026年的目标"), when it is


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
    shape: Shape = Shape.PLAIN
    parts: tuple[Part, ...] = ()  # a composed answer's parts, in the question's order; each cites one sentence

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the answer."""
        return jsonable(dataclasses.asdict(self))


def jsonable(value: Any) -> Any:
    """Return `value` ready for json.dumps: enums as their values, paths as strings, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
