"""Citations: a span of a retrieved chunk turned into exact spans of the cleaned and original file.

Shared by every answerer (extractive, reader, LLM), so it lives below all of them.
"""

from __future__ import annotations

import bisect

from rag.index import Index
from rag.convert.tables import CELL_SEPARATOR, ROW_SEPARATOR
from rag.types import Chunk, Citation, Document, Hit


def make_citation(index: Index, n: int, hit: Hit, start: int, end: int,
                  answer: tuple[int, int] | None = None) -> Citation:
    """Return the citation of chunk-local sentence [start, end) of `hit`, with the short answer's span if given."""
    chunk = hit.chunk
    doc = index.documents[chunk.doc_id]
    start, end = _whole_row(doc, chunk, start, end)
    doc_start, doc_end = chunk.start + start, chunk.start + end
    orig_start, orig_end = doc.original_span(doc_start, doc_end)
    spans: dict = {}
    if answer is not None:
        a, b = chunk.start + answer[0], chunk.start + answer[1]
        if not (doc_start <= a < b <= doc_end):
            raise ValueError(f"answer span {a}:{b} lies outside its sentence {doc_start}:{doc_end}")
        spans = dict(zip(("answer_start", "answer_end", "answer_orig_start", "answer_orig_end"),
                         (a, b, *doc.original_span(a, b))))
    location = doc.location(orig_start, orig_end)
    if answer is not None and location:
        column = _column(doc, chunk, *answer)
        location = f"{location} · “{column}”列" if column else location
    return Citation(
        n=n,
        doc_id=doc.id,
        file=doc.file,
        title=doc.title,
        date=doc.date,
        chunk_id=chunk.id,
        sentence=chunk.text[start:end],
        start=doc_start,
        end=doc_end,
        orig_start=orig_start,
        orig_end=orig_end,
        page=doc.page_of(orig_start),
        location=location,
        **spans,
    )


# A row longer than this is quoted by its sentences, as any passage.
ROW_QUOTE_CHARS = 300


def _row_span(doc: Document, chunk: Chunk, start: int) -> tuple[int, int] | None:
    """Return the chunk-local span of the table row holding chunk-local `start`, or None outside rows."""
    orig = doc.offsets[chunk.start + start]
    row = next((r for r in doc.regions if r.kind == "row" and r.start <= orig < r.end), None)
    if row is None:
        return None
    a = bisect.bisect_left(doc.offsets, row.start, chunk.start, chunk.end) - chunk.start
    b = bisect.bisect_left(doc.offsets, row.end, chunk.start, chunk.end) - chunk.start
    return (a, b) if 0 <= a < b else None


def _whole_row(doc: Document, chunk: Chunk, start: int, end: int) -> tuple[int, int]:
    # A cell quoted alone ("2025年：278.8万辆") loses the row it belongs to: quote the row.
    span = _row_span(doc, chunk, start)
    if span is None or span[1] - span[0] > ROW_QUOTE_CHARS or not (span[0] <= start and end <= span[1]):
        return start, end
    return span


def _column(doc: Document, chunk: Chunk, answer_start: int, answer_end: int) -> str:
    """Return the column name of the "列名：值" cell holding the chunk-local answer, or ""."""
    span = _row_span(doc, chunk, answer_start)
    if span is None:
        return ""
    cell_start = max(chunk.text.rfind(ROW_SEPARATOR, span[0], answer_start + 1) + 1, span[0])
    colon = chunk.text.find(CELL_SEPARATOR, cell_start, answer_end)  # the answer may start at the colon
    return chunk.text[cell_start:colon].strip() if colon > cell_start else ""
