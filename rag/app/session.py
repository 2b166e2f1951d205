"""What a page session holds: the conversation's turns and the passage open in the sources panel."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.types import Answer, Document

# Said under an answer restored from the browser's history without its sources.
RESTORED_NOTE = "（从本浏览器的历史恢复：出处未保存，点“重新回答”可重新查看）"


@dataclass(frozen=True)
class Turn:
    """One question of a conversation, its answer (or error) and the documents the answer points into."""

    question: str
    answer: Answer | None = None
    error: str = ""
    documents: dict[str, Document] = field(default_factory=dict)
    restored: str = ""  # the answer's text, for a turn restored from the browser's history without its sources
    restored_note: str = ""  # why its sources are not shown


@dataclass(frozen=True)
class Focus:
    """The passage open in the sources panel: a span of a document's original text."""

    document: Document
    orig_start: int
    orig_end: int
    answer: tuple[int, int] | None = None  # the short answer's span inside it, when there is one
    note: str = ""  # said above the text when the document was deleted or changed since the answer


def answered_turn(question: str, answer: Answer, documents: dict[str, Document]) -> Turn:
    """Return the turn of an answer, keeping the documents its citations and passages point into."""
    wanted = {c.doc_id for c in answer.citations} | {h.chunk.doc_id for h in answer.passages}
    return Turn(question, answer, documents={d: documents[d] for d in wanted if d in documents})

