"""BM25 over normalized jieba tokens, with bm25s."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rag import text as textmod

BM25_FOLDER = "bm25"


def _bm25s():
    try:
        import bm25s
    except ImportError as exc:
        raise RuntimeError("BM25 needs bm25s: pip install bm25s") from exc
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Index:
    """A BM25 index over chunk texts; scores a query's tokens against every chunk."""

    def __init__(self, retriever, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        """Return an index of `texts`, tokenized with the project tokenizer."""
        retriever = _bm25s().BM25(k1=k1, b=b)
        # bm25s refuses an empty document; a placeholder token keeps positions aligned.
        corpus = [textmod.tokenize(t) or ["\u2400"] for t in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(texts))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (chunk index, score) pairs, best first; none when no query token is known."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        tokens = [t for t in textmod.tokenize(query) if t in self._retriever.vocab_dict]
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]

    def knows(self, token: str) -> bool:
        """True when some indexed chunk contains `token`."""
        return token in self._retriever.vocab_dict

    def idf(self, token: str) -> float:
        """Return log((N + 1) / (df + 0.5)) of a normalized token; unseen tokens get the highest value."""
        if not hasattr(self, "_df"):
            indptr = np.asarray(self._retriever.scores["indptr"])
            self._df = np.diff(indptr)
        column = self._retriever.vocab_dict.get(token)
        df = int(self._df[column]) if column is not None and column < len(self._df) else 0
        return float(np.log((self.size + 1) / (df + 0.5)))

    def save(self, folder: Path) -> None:
        """Write the index under folder/bm25."""
        self._retriever.save(str(Path(folder) / BM25_FOLDER), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> BM25Index:
        """Return the index saved under folder/bm25."""
        retriever = _bm25s().BM25.load(str(Path(folder) / BM25_FOLDER), show_progress=False)
        return cls(retriever, size)
