"""Find the passages for a question: BM25, dense, or their reciprocal-rank fusion."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag import text as textmod
from rag.index import Index, embedding_text
from rag.types import Hit, Mode

MAX_QUESTION_CHARS = 2000
_UNITS_PER_CHUNK = 8  # a chunk holds about this many embedded units (itself + its sentences)


class QuestionError(ValueError):
    """The question cannot be asked as given (empty, too long)."""


@dataclass(frozen=True)
class RetrievalConfig:
    """Retrieval settings: mode, results returned, candidates per retriever, and the RRF constant."""

    mode: Mode = Mode.HYBRID
    k: int = 5
    candidates: int = 30
    rrf_k: int = 60

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.candidates < self.k:
            object.__setattr__(self, "candidates", self.k)
        if self.rrf_k <= 0:
            raise ValueError(f"rrf_k must be positive, got {self.rrf_k}")


def check_question(question: str) -> str:
    """Return the stripped question; raise QuestionError when it is empty or too long."""
    if question is None or not str(question).strip():
        raise QuestionError("the question is empty: type a question about the documents")
    question = str(question).strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}: shorten it"
        )
    return question


class Retriever:
    """Searches one loaded index; cheap to create, all heavy state lives in the index."""

    def __init__(self, index: Index, config: RetrievalConfig = RetrievalConfig()) -> None:
        self.index = index
        self.config = config
        self.timings: dict[str, float] = {}
        self._last_query: str | None = None
        self._last_vector: np.ndarray | None = None

    def run(self, question: str, mode: Mode | str | None = None, k: int | None = None) -> list[Hit]:
        """Return the top-k hits for `question`, best first."""
        question = check_question(question)
        mode = Mode(mode or self.config.mode)
        k = self.config.k if k is None else k
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        n = max(self.config.candidates, k)
        self.timings = {}
        dense = self._dense(question, n) if mode in (Mode.DENSE, Mode.HYBRID) else []
        sparse = self._bm25(question, n) if mode in (Mode.BM25, Mode.HYBRID) else []
        began = time.perf_counter()
        if mode is Mode.DENSE:
            ranked = [(i, s) for i, s in dense]
        elif mode is Mode.BM25:
            ranked = [(i, s) for i, s in sparse]
        else:
            ranked = rrf([[i for i, _ in dense], [i for i, _ in sparse]], self.config.rrf_k)
        dense_rank = {i: r for r, (i, _) in enumerate(dense, 1)}
        bm25_rank = {i: r for r, (i, _) in enumerate(sparse, 1)}
        hits = [
            Hit(
                chunk=self.index.chunks[i],
                score=float(score),
                rank=rank,
                dense_rank=dense_rank.get(i),
                bm25_rank=bm25_rank.get(i),
            )
            for rank, (i, score) in enumerate(ranked[:k], 1)
        ]
        self.timings["fusion"] = time.perf_counter() - began
        return hits

    def _dense(self, question: str, n: int) -> list[tuple[int, float]]:
        began = time.perf_counter()
        vector = self.query_vector(question)
        self.timings["embed"] = time.perf_counter() - began
        began = time.perf_counter()
        # Units are chunks and their sentences; a chunk scores as its best unit.
        scores, ids = self.index.dense.search(vector[None, :], n * _UNITS_PER_CHUNK)
        best: dict[int, float] = {}
        for unit, score in zip(ids[0], scores[0]):
            if unit < 0:
                continue
            chunk = int(self.index.units[unit][0])
            if chunk not in best:
                best[chunk] = float(score)
        self.timings["dense"] = time.perf_counter() - began
        return sorted(best.items(), key=lambda pair: -pair[1])[:n]

    def _bm25(self, question: str, n: int) -> list[tuple[int, float]]:
        began = time.perf_counter()
        hits = self.index.keywords.search(question, n)
        self.timings["bm25"] = time.perf_counter() - began
        return hits

    def query_vector(self, question: str) -> np.ndarray:
        """Return the unit query vector of `question`, cached for the answerer's reuse."""
        if self._last_query != question:
            self._last_vector = self.index.embedder.embed_queries([embedding_text(question)])[0]
            self._last_query = question
        return self._last_vector


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Return items fused by reciprocal rank, (item, score) best first; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


# --- follow-up questions ----------------------------------------------------------------------

# Whole words only: "其" in 米其林 or "该" in 应该 is no reference to the previous turn.
_ANAPHORA = frozenset("那 那么 它 它们 它的 其 其中 这 这个 这些 这家 这项 这里 该 该项 那个 那些 那家 那里 此 此项 上述 以上".split())
_ENGLISH_ANAPHORA = re.compile(r"\b(it|its|they|their|this|that|these|those|he|she|his|her)\b", re.I)
_SHORT_FOLLOW_UP = 8


def resolve_follow_up(question: str, history: Sequence[str]) -> str:
    """Return `question` made self-contained using the previous questions (no LLM).

    An elliptical or anaphoric question ("那它的规模呢？") gets the previous question's key terms
    added, so retrieval finds the passage the conversation is about.
    """
    question = question.strip()
    previous = [h for h in history if h and h.strip()]
    if not previous:
        return question
    normalized = textmod.normalize(question)
    elliptical = (
        any(w in _ANAPHORA for w in textmod.words(question))
        or _ENGLISH_ANAPHORA.search(question) is not None
        or len(textmod.tokenize(question)) <= 1
        or (len(question) <= _SHORT_FOLLOW_UP and normalized.endswith(("呢", "呢？", "呢?")))
    )
    if not elliptical:
        return question
    own = set(textmod.tokenize(question))
    carried: list[str] = []
    for earlier in reversed(previous[-2:]):
        for token in textmod.tokenize(earlier):
            if token not in own and token not in carried and len(token) > 1:
                carried.append(token)
        if carried:
            break
    if not carried:
        return question
    return " ".join(carried) + " " + question
