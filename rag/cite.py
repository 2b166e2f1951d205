"""Citations: a span of a retrieved chunk turned into exact spans of the cleaned and original file.

Shared by every answerer (extractive, reader, LLM), so it lives below all of them.
"""

from __future__ import annotations

from rag.index import Index
from rag.types import Citation, Hit


def make_citation(index: Index, n: int, hit: Hit, start: int, end: int,
                  answer: tuple[int, int] | None = None) -> Citation:
    """Return the citation of chunk-local sentence [start, end) of `hit`, with the short answer's span if given."""
    chunk = hit.chunk
    doc = index.documents[chunk.doc_id]
    doc_start, doc_end = chunk.start + start, chunk.start + end
    orig_start, orig_end = doc.original_span(doc_start, doc_end)
    spans: dict = {}
    if answer is not None:
        a, b = chunk.start + answer[0], chunk.start + answer[1]
        if not (doc_start <= a < b <= doc_end):
            raise ValueError(f"answer span {a}:{b} lies outside its sentence {doc_start}:{doc_end}")
        spans = dict(zip(("answer_start", "answer_end", "answer_orig_start", "answer_orig_end"),
                         (a, b, *doc.original_span(a, b))))
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
        **spans,
    )
