"""What the default `rag bench` run measures, and how big."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.bench.common import DEFAULT_GOLD
from rag.paths import SEEDS


@dataclass(frozen=True)
class BenchConfig:
    """What one run measures and how big; `quick()` fits a CI budget, `full()` is the real thing."""

    quick: bool = False
    docs_dir: Path = SEEDS
    gold: Path = DEFAULT_GOLD
    out_dir: Path | None = None  # None: $RAG_HOME/reports/bench
    matmul_size: int = 4096
    embed_texts: int | None = None  # None: every seed unit (chunks and their sentences)
    questions: int | None = None  # None: every gold question
    faiss_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    random_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)  # uniform unit vectors: the worst case for ANN
    hnsw_max: int = 100_000  # HNSW builds beyond this take many minutes on two cores
    bm25_sizes: tuple[int, ...] = (10_000, 100_000)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.embed_texts is not None and self.embed_texts <= 0:
            raise ValueError(f"embed_texts must be positive, got {self.embed_texts}")
        if self.questions is not None and self.questions <= 0:
            raise ValueError(f"questions must be positive, got {self.questions}")
        if any(n < 1000 for n in self.faiss_sizes + self.random_sizes + self.bm25_sizes):
            raise ValueError("synthetic corpora need at least 1000 items")

    @classmethod
    def full(cls, **overrides) -> BenchConfig:
        """Return the settings of a full run (about nine minutes on two idle cores)."""
        return cls(**overrides)

    @classmethod
    def quick_run(cls, **overrides) -> BenchConfig:
        """Return the settings of a quick run (under two minutes on two cores)."""
        settings = dict(quick=True, matmul_size=2048, embed_texts=64, questions=20, faiss_sizes=(10_000,),
                        random_sizes=(10_000,), hnsw_max=10_000, bm25_sizes=(10_000,))
        settings.update(overrides)
        return cls(**settings)

