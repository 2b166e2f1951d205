"""What the reader reads and what it returns: question + passage as token ids, and the best span back.

Training and inference build windows with the same function, so the model sees at run time exactly
the input layout it was trained on: <s> query: question </s></s> passage </s>.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_QUESTION_TOKENS = 64
MAX_ANSWER_TOKENS = 72  # the 99th percentile of the training answers (CMRC: 16 % are over 40 tokens)


@dataclass(frozen=True)
class Window:
    """One reader input: token ids, where the passage starts, and each passage token's character span."""

    ids: tuple[int, ...]
    first: int
    spans: tuple[tuple[int, int], ...]
    passage: str

    @property
    def passage_tokens(self) -> int:
        """How many passage tokens the window holds."""
        return len(self.spans)


@dataclass(frozen=True)
class Span:
    """The best answer span of one window: passage character offsets and its scores."""

    start: int
    end: int
    score: float  # start + end logit
    answerable: float  # the window's answerability logit
    rank: float | None = None  # the window's ranking logit (None: the adapter ranks by answerability)

    @property
    def order(self) -> float:
        """What the window is ranked by among a question's windows."""
        return self.answerable if self.rank is None else self.rank


def question_ids(tokenizer, question: str) -> list[int]:
    """Return the question's piece ids, e5's query prefix included, capped at MAX_QUESTION_TOKENS."""
    return tokenizer.content_ids("query: " + question)[:MAX_QUESTION_TOKENS]


def encode(tokenizer, q_ids: list[int], passage: str, pieces: list[tuple[int, int, int]] | None = None,
           max_positions: int = 512) -> Window:
    """Return the window for a question's ids and a passage (pieces may be given precomputed)."""
    vocab = tokenizer.vocabulary
    pieces = tokenizer.pieces(passage) if pieces is None else pieces
    head = [vocab.bos, *q_ids, vocab.eos, vocab.eos]
    room = max_positions - len(head) - 1
    kept = pieces[:room]
    return Window(
        ids=(*head, *(p[0] for p in kept), vocab.eos),
        first=len(head),
        spans=tuple((p[1], p[2]) for p in kept),
        passage=passage,
    )


def token_targets(window: Window, start: int, end: int) -> tuple[int, int] | None:
    """Return the (first, last) input positions of the tokens covering characters [start, end), or None."""
    first = last = None
    for i, (a, b) in enumerate(window.spans):
        if b <= a:
            continue
        if first is None and b > start:
            first = i
        if a < end:
            last = i
    if first is None or last is None or last < first or window.spans[first][0] > start + 1:
        return None
    return window.first + first, window.first + last


def best_span(window: Window, start_logits: np.ndarray, end_logits: np.ndarray, answerable: float,
              rank: float | None = None) -> Span | None:
    """Return the highest-scoring span of at most MAX_ANSWER_TOKENS passage tokens, or None for an empty passage."""
    n = window.passage_tokens
    if n == 0:
        return None
    s = start_logits[window.first : window.first + n].astype(np.float64)
    e = end_logits[window.first : window.first + n].astype(np.float64)
    empty = np.array([b <= a for a, b in window.spans])
    s[empty] = -1e9  # a bare metaspace piece cannot begin or end an answer
    e[empty] = -1e9
    scores = s[:, None] + e[None, :]
    i, j = np.indices(scores.shape)
    scores[(j < i) | (j - i >= MAX_ANSWER_TOKENS)] = -np.inf
    flat = int(np.argmax(scores))
    first, last = divmod(flat, n)
    return Span(window.spans[first][0], window.spans[last][1], float(scores[first, last]), float(answerable),
                None if rank is None else float(rank))
