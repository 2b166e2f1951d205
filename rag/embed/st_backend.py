"""Any sentence-transformers model, by hub name or local path, with the right role prefixes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.embed import normalize_rows

BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "


def role_prefixes(name: str) -> tuple[str, str]:
    """Return the (query, passage) prefixes a model family was trained with."""
    lowered = name.lower()
    if "e5" in lowered:
        return "query: ", "passage: "
    if "bge" in lowered and "m3" not in lowered:
        return (BGE_ZH_QUERY if "zh" in lowered else BGE_EN_QUERY), ""
    return "", ""


class SentenceTransformerEmbedder:
    """A sentence-transformers model; loads lazily, on the CPU, never reaching for a hub if local."""

    def __init__(self, name_or_path: str, batch_size: int = 32) -> None:
        if not name_or_path:
            raise ValueError("st: needs a model name or path, e.g. st:BAAI/bge-small-zh-v1.5")
        self.name = name_or_path
        self.batch_size = batch_size
        self.model_id = f"st:{name_or_path}"
        self.query_prefix, self.passage_prefix = role_prefixes(Path(name_or_path).name or name_or_path)
        self._model = None
        self.dim = 0
        if Path(name_or_path).exists():
            self._get()  # a local model is cheap to open and tells its dimension

    def _get(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError("st: models need sentence-transformers: pip install sentence-transformers") from exc
            try:
                self._model = SentenceTransformer(self.name, device="cpu")
            except OSError as exc:
                raise RuntimeError(
                    f"cannot load sentence-transformers model {self.name!r}: {exc}. "
                    "Without network, pass a local folder: --model st:/path/to/model"
                ) from exc
            self.dim = int(self._model.get_embedding_dimension()
                           if hasattr(self._model, "get_embedding_dimension")
                           else self._model.get_sentence_embedding_dimension())
        return self._model

    def _encode(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        model = self._get()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = model.encode([prefix + t for t in texts], batch_size=self.batch_size,
                               convert_to_numpy=True, show_progress_bar=False)
        return normalize_rows(vectors)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit query vectors with the family's query prefix."""
        return self._encode(texts, self.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit passage vectors with the family's passage prefix."""
        return self._encode(texts, self.passage_prefix)
