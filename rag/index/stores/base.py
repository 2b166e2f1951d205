"""What a search backend is: a dense and a keyword store to read, and the writes of one build.

A build asks its backend for a `StoreBuild` before any work (so a missing client or an unreachable
server fails at once), lets it start the keyword side early, has it publish the vectors and keywords
into the build folder or the store, switches the index folder's CURRENT, and only then lets the store
switch too; a failed build is cancelled. A load hands the manifest's "store" entry back to the same
backend, which opens the build's two stores.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.config import StoreConfig

Progress = Callable[[str, int, int], None]


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


@dataclass(frozen=True)
class BuildVectors:
    """What a build publishes: its embedded units, written while the build folder is not yet live."""

    folder: Path  # the build's folder (still a .tmp- one)
    build_id: str
    vectors: np.ndarray  # (units, dim) float32, unit length
    units: np.ndarray  # (units, 3) int32: chunk position, start, end (units.dense_units)
    chunk_ids: tuple[str, ...]
    kind: str  # the dense index kind, as `StoreBuild.dense_kind` gave it


@dataclass(frozen=True)
class StoredBuild:
    """What a load knows of a build before its stores are opened: the manifest's figures and the unit table."""

    folder: Path
    kind: str
    size: int  # unit vectors, per the manifest
    dim: int
    chunk_ids: tuple[str, ...]
    units: np.ndarray


class StoreBuild(Protocol):
    """The writes of one build to its store, from before any work to the switch."""

    def index_keywords(self, texts: list[str], words: list[str], folder: Path, background: bool,
                       progress: Progress | None = None) -> None:
        """Start (or do) the keyword side of the build in `folder`; `background`: a spare core may take it."""
        ...

    def dense_kind(self, kind: str) -> str:
        """Return the dense index kind this store builds when `kind` is asked for."""
        ...

    def publish(self, build: BuildVectors) -> dict:
        """Write the build's vectors and keywords, not yet live; return the fields of the manifest's "store"
        entry (the caller adds the backend's name)."""
        ...

    def switch(self) -> None:
        """Make the published build the store's live one; called after the index folder's CURRENT switched."""
        ...

    def cancel(self) -> None:
        """Stop what the build started: it failed (its folder is removed by the caller)."""
        ...


class StoreBackend(Protocol):
    """A search backend, picked by name (`rag.index.stores.backend`): writes builds, opens them again."""

    def build(self, config: StoreConfig, index_dir: Path) -> StoreBuild:
        """Return the writes of one build of `index_dir` under `config`; fail now if the store cannot be used."""
        ...

    def valid_entry(self, entry: dict) -> bool:
        """True when a manifest's "store" entry has every field `load` reads, of the right type."""
        ...

    def load(self, entry: dict, build: StoredBuild) -> tuple[DenseStore, KeywordStore]:
        """Return the dense and keyword stores of a build; raise DamagedStoreFile naming the damaged part."""
        ...


class DamagedStoreFile(ValueError):
    """A file (or part) of the store cannot be read or disagrees with the others; `file` names it."""

    def __init__(self, file: str, detail: str) -> None:
        super().__init__(detail)
        self.file = file


@contextlib.contextmanager
def reading(part: str):
    """Turn any failure while reading or checking `part` of a store into DamagedStoreFile naming it; an
    IndexProblem (a store that cannot be reached) keeps its own message."""
    from rag.index.manifest import IndexProblem  # not at the top: the manifest's checks import this package

    try:
        yield
    except (DamagedStoreFile, IndexProblem):
        raise
    except Exception as exc:  # bytes on disk can break a reader in any way; all of them mean "damaged"
        raise DamagedStoreFile(part, str(exc) or type(exc).__name__) from exc


def check_dense(dense: DenseStore, build: StoredBuild) -> None:
    """Raise ValueError unless the dense store holds as many vectors of as many numbers as the manifest says."""
    if (dense.size, dense.dim) != (build.size, build.dim):
        raise ValueError(f"{dense.size} vectors of {dense.dim} numbers, the manifest says "
                         f"{build.size} of {build.dim}")
