"""Search backends behind two small protocols: dense search over the embedded units, keyword search over
chunks. One file per backend: FAISS + bm25s in the build folder (the default), or Qdrant (`qdrant.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class DenseStore(Protocol):
    """Inner-product search over the unit vectors of one build; ids are unit rows (see `units.dense_units`)."""

    kind: str

    @property
    def size(self) -> int:
        """Number of stored vectors."""
        ...

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, unit rows), each (n_queries, k'), best first; missing results have row -1."""
        ...

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """Return the stored vectors of `rows`, (len(rows), dim) float32."""
        ...


class KeywordStore(Protocol):
    """BM25-style search over chunk texts, and the term statistics the answerer weighs words with."""

    size: int

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (chunk position, score) pairs, best first; none when no query token is known."""
        ...

    def knows(self, token: str) -> bool:
        """True when some indexed chunk contains the normalized `token`."""
        ...

    def idf(self, token: str) -> float:
        """Return log((N + 1) / (df + 0.5)) of a normalized token; unseen tokens get the highest value."""
        ...
