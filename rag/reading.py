"""Answering with the trained reader: where to read, which span wins, and how sure it is.

Reading five whole passages would cost ~150 ms on two cores, so the reader reads windows instead:
each of the best-scored sentences (the extractive scorer ranks them in ~3 ms) with one neighbour on
each side, windows of one chunk merged. The span with the highest answerability wins; the sentence
that holds it is the evidence quoted, and a calibrated logistic model of the reader's scores decides
whether to answer at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.index import Index
from rag.injection import is_instruction
from rag.reader.reader import Reader
from rag.types import Hit
from rag.whole_span import whole_span

READER_FEATURES = ("answerable", "span", "margin", "prior", "unseen")
PRIOR_WEIGHT = 2.0
_DEFAULT_WEIGHTS = {"answerable": 1.0}
_CLAUSE_BREAK = re.compile(r"[，,；;：:]")
_EDGE_SEPARATORS = frozenset("：:；;，,、")
QUOTE_CHARS = 120  # a longer sentence is quoted from the clauses around the answer


@dataclass(frozen=True)
class ReadingWindow:
    """A chunk-local span of a retrieved chunk that the reader reads, and the sentence spans inside it."""

    hit: Hit
    start: int
    end: int
    sentences: tuple[tuple[int, int], ...]  # chunk-local, in order
    prior: float = 0.0  # the best sentence score (extractive scorer) among the candidates it was built around

    @property
    def text(self) -> str:
        """The window's text."""
        return self.hit.chunk.text[self.start : self.end]


@dataclass(frozen=True)
class Reading:
    """The reader's answer: the span and the sentence to quote (chunk-local), and the evidence features."""

    hit: Hit
    answer: tuple[int, int]
    quote: tuple[int, int]
    features: dict[str, float]


def reading_windows(index: Index, candidates: Sequence, count: int) -> list[ReadingWindow]:
    """Return windows around the `count` best candidate sentences (objects with .hit/.start/.end), merged per chunk."""
    spans: dict[str, list[int]] = {}
    scores: dict[tuple[str, int], float] = {}  # (chunk, sentence row) -> candidate score
    hits: dict[str, Hit] = {}
    sentences_of: dict[str, list[tuple[int, int]]] = {}
    for cand in candidates[:count]:
        chunk = cand.hit.chunk
        if chunk.id not in sentences_of:
            units = [(s, e) for s, e, _ in index.sentence_units(index.chunk_position(chunk.id))]
            sentences = [u for u in units if u != (0, len(chunk.text))] or [(0, len(chunk.text))]
            sentences_of[chunk.id] = sorted(sentences)
            hits[chunk.id] = cand.hit
        sentences = sentences_of[chunk.id]
        at = next((i for i, (s, e) in enumerate(sentences) if s <= cand.start < e), None)
        if at is None:
            continue
        chosen = spans.setdefault(chunk.id, [])
        # A neighbour aimed at an AI model stays out: the reader must not take its answer from it.
        chosen.extend(i for i in range(max(0, at - 1), min(len(sentences), at + 2))
                      if i == at or not is_instruction(chunk.text[slice(*sentences[i])]))
        scores[(chunk.id, at)] = max(scores.get((chunk.id, at), -1e9), cand.score)
    out = []
    for chunk_id, rows in spans.items():
        sentences = sentences_of[chunk_id]
        rows = sorted(set(rows))
        # Consecutive sentences form one window; a gap starts the next.
        group = [rows[0]]
        for row in rows[1:] + [None]:
            if row is not None and row == group[-1] + 1:
                group.append(row)
                continue
            parts = tuple(sentences[i] for i in group)
            prior = max(scores.get((chunk_id, i), -1e9) for i in group)
            out.append(ReadingWindow(hits[chunk_id], parts[0][0], parts[-1][1], parts, prior))
            if row is not None:
                group = [row]
    return out


class ReaderAnswerer:
    """Reads the windows, picks the best span, and scores how likely it answers the question."""

    def __init__(self, reader: Reader, weights: dict[str, float], bias: float) -> None:
        self.reader = reader
        self.weights = weights or _DEFAULT_WEIGHTS
        self.bias = bias

    def read(self, question: str, windows: Sequence[ReadingWindow], unseen: float) -> Reading | None:
        """Return the best reading of `windows`, or None when there is nothing to read."""
        readings = self.read_all(question, windows, unseen)
        return readings[0] if readings else None

    def read_all(self, question: str, windows: Sequence[ReadingWindow], unseen: float) -> list[Reading]:
        """Return one reading per window that holds a span, best first; each one's features rank it
        against those after it, so a caller that passes over the first can still gauge the next."""
        if not windows:
            return []
        spans = self.reader.read(question, [w.text for w in windows])
        found = [(w, s) for w, s in zip(windows, spans) if s is not None]
        # The sentence scorer's ranking as a prior (weight chosen on eval/calibration.jsonl: it took the
        # first adapter's answer-sentence containment from 0.70 to 0.80; for the retrained one it keeps
        # abstention F1 at 0.76 against 0.73 without it, containment being 0.93 either way).
        found = rank_readings(found)
        return [self._reading(found[i:], unseen) for i in range(len(found))]

    @staticmethod
    def _reading(ranked: Sequence, unseen: float) -> Reading:
        window, span = ranked[0]
        text = window.hit.chunk.text
        a, b = window.start + span.start, window.start + span.end
        # No space or separator at either edge ("：3125.6" read from a table row's "列名：值").
        while b - a > 1 and (text[a].isspace() or text[a] in _EDGE_SEPARATORS):
            a += 1
        while b - a > 1 and (text[b - 1].isspace() or text[b - 1] in _EDGE_SEPARATORS):
            b -= 1
        answer = whole_span(text, a, b)
        return Reading(window.hit, answer, quote_span(window, answer), reading_features(ranked, unseen))

    def confidence(self, features: dict[str, float]) -> float:
        """Return the calibrated probability that the reading answers the question."""
        z = self.bias + sum(self.weights.get(k, 0.0) * v for k, v in features.items())
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def rank_readings(found: Sequence, prior_weight: float = PRIOR_WEIGHT) -> list:
    """Return (window, span) pairs best first: the reader's ranking logit plus the sentence scorer's prior."""
    return sorted(found, key=lambda ws: -(ws[1].order + prior_weight * ws[0].prior))


def reading_features(ranked: Sequence, unseen: float) -> dict[str, float]:
    """Return the abstention model's features (READER_FEATURES) of a question's readings, ranked best first."""
    window, span = ranked[0]
    # How sure the answer is comes from the answerability head (calibrated across questions), even
    # when a ranking head chose the window.
    runner_up = ranked[1][1].answerable if len(ranked) > 1 else span.answerable - 5.0
    return {
        "answerable": span.answerable,
        "span": span.score / 10.0,
        "margin": min(5.0, span.answerable - runner_up),
        "prior": window.prior,
        "unseen": unseen,
    }


def quote_span(window: ReadingWindow, answer: tuple[int, int]) -> tuple[int, int]:
    """Return the chunk-local span to quote: the sentence(s) holding the answer, trimmed to clauses if long."""
    a, b = answer
    covering = [(s, e) for s, e in window.sentences if s < b and e > a] or [(window.start, window.end)]
    start, end = covering[0][0], covering[-1][1]
    text = window.hit.chunk.text
    if end - start <= QUOTE_CHARS:
        s, e = _trim(text, start, end)
        return min(s, a), max(e, b)
    bounds = sorted({start, end, *(m.end() + start for m in _CLAUSE_BREAK.finditer(text[start:end]))})
    clauses = [(x, y) for x, y in zip(bounds, bounds[1:]) if y > x]
    inside = [i for i, (x, y) in enumerate(clauses) if x < b and y > a]
    first, last = inside[0], inside[-1]
    # Widen around the answer, the preceding clause first: it usually names the subject.
    while True:
        if first > 0 and clauses[last][1] - clauses[first - 1][0] <= QUOTE_CHARS:
            first -= 1
        elif last + 1 < len(clauses) and clauses[last + 1][1] - clauses[first][0] <= QUOTE_CHARS:
            last += 1
        else:
            break
    s, e = _trim(text, clauses[first][0], clauses[last][1])
    return min(s, a), max(e, b)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while end > start and (text[end - 1].isspace() or _CLAUSE_BREAK.match(text[end - 1])):
        end -= 1
    while start < end and text[start].isspace():
        start += 1
    return start, end
