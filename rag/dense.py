"""Dense vector stores behind one protocol; FAISS backends chosen by corpus size."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

VECTORS_FILE = "vectors.faiss"


class VectorStore(Protocol):
    """Inner-product search over unit vectors."""

    kind: str

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids), each (n_queries, k); missing results have id -1."""
        ...

    def save(self, folder: Path) -> None:
        """Write the store into `folder`."""
        ...


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise RuntimeError("dense search needs faiss: pip install faiss-cpu") from exc
    return faiss


class FaissStore:
    """A FAISS index over L2-normalized vectors (inner product = cosine)."""

    def __init__(self, index, kind: str) -> None:
        self._index = index
        self.kind = kind

    @property
    def size(self) -> int:
        """Number of stored vectors."""
        return int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids) of the k nearest stored vectors per query."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        k = min(k, max(self.size, 1))
        scores, ids = self._index.search(queries, k)
        return scores, ids

    def save(self, folder: Path) -> None:
        """Write the FAISS index to folder/vectors.faiss."""
        _faiss().write_index(self._index, str(Path(folder) / VECTORS_FILE))


def build_store(vectors: np.ndarray, kind: str = "flat") -> FaissStore:
    """Return a store holding `vectors` (rows already unit length)."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        raise ValueError(f"unknown dense index kind {kind!r}")
    index.add(vectors)
    return FaissStore(index, kind)


def load_store(folder: Path, kind: str) -> FaissStore:
    """Return the store saved in `folder`."""
    return FaissStore(_faiss().read_index(str(Path(folder) / VECTORS_FILE)), kind)
