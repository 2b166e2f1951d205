"""Negatives read the way the answerer reads: the windows a training question's own retrieval puts before the reader.

Made negatives (the answer's sentence deleted, a sibling chunk, a look-alike chunk of another
article) are guesses at what the reader meets. These are not guesses: for each training question
the default path runs over an index of the file's training articles only (hybrid retrieval, the
sentence scorer, windows around its best sentences, cut as `rag.reading` cuts them), and the windows
that do not hold the answer are the ones the answer competes with at run time. Held-out articles
are neither indexed nor asked, so they stay unseen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from rag.text import to_simplified

READ_PER_QUESTION = 2


def read_negatives(path: Path, split: str = "train", per_question: int = READ_PER_QUESTION,
                   limit: int | None = None, embedder=None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:
    """Return, per question of `split` (its Simplified text), up to `per_question` reading windows
    (Simplified, best first) that do not hold its answer."""
    from rag.answer import Answerer, profile_question
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.evaluation import squad_index
    from rag.reading import reading_windows
    from rag.retrieve import Retriever
    from rag.evaluation.squad import load_squad

    squad = load_squad(Path(path))
    questions = [q for q in squad.questions if q.split == split][:limit]
    files = {q.file for q in squad.questions if q.split == split}
    squad = dataclasses.replace(squad, paragraphs=tuple(p for p in squad.paragraphs if p.file in files),
                                questions=tuple(questions))
    embedder = embedder or make_embedder(DEFAULT_MODEL, long_lived=True)
    out: dict[str, list[str]] = {}
    with squad_index(squad, embedder) as index:
        answerer = Answerer(index)
        count = answerer.settings.answer.read_sentences
        retriever = Retriever(index, answerer.retrieval)
        for done, q in enumerate(questions, 1):
            hits = retriever.run(q.question)
            ranked = answerer.extractive.candidates(profile_question(q.question), retriever.query_vector(q.question), hits)
            answers = [to_simplified(a) for a in q.answers]
            texts = [to_simplified(w.text) for w in reading_windows(index, ranked, count)]
            found = [t for t in texts if len(t) >= 10 and not any(a in t for a in answers)]
            if found:
                out.setdefault(to_simplified(q.question), []).extend(found[:per_question])
            if progress:
                progress(done, len(questions))
    return out
