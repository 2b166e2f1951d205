"""The FAISS dense store: exact search, or HNSW / IVF-SQ8 for large corpora, with the unit vectors beside it;
and the default backend, FAISS with bm25s (`bm25.py`), both saved in the build folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rag.config import StoreConfig
from rag.index.stores.base import (BuildVectors, DamagedStoreFile, Progress, StoredBuild, check_dense,
                                   reading)
from rag.index.stores.bm25 import BM25_FOLDER, BackgroundBuild, BM25Index, build_and_save

VECTORS_FILE = "vectors.faiss"
# The exact vectors, for the answerer's sentence scores: IVF-SQ8 keeps only 8-bit codes.
UNIT_VECTORS_FILE = "unit_vectors.npy"

DenseKind = Literal["flat", "hnsw", "ivf_sq8"]
DENSE_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf_sq8")
# Settings measured by `rag bench` (bench/results/latest.md): on clustered 384-d embeddings IVF-SQ8
# with 32 probes keeps Recall@10 at 0.97-0.98 up to 1M vectors in ~400 bytes each; HNSW reaches 0.998
# but keeps the full vectors plus its graph (~1.8 kB each) and builds 3-6x slower.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVF_NPROBE = 32
_TRAINING_PER_LIST = 39  # FAISS warns below 39 training points per list


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise RuntimeError("dense search needs faiss: pip install faiss-cpu") from exc
    return faiss


class FaissStore:
    """A FAISS index over L2-normalized vectors (inner product = cosine)."""

    def __init__(self, index, kind: str, vectors: np.ndarray) -> None:
        self._index = index
        self.kind = kind
        self._vectors = vectors

    @property
    def size(self) -> int:
        """Number of stored vectors."""
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        return int(self._index.d)

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

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """Return the stored vectors of `rows`, (len(rows), dim) float32."""
        return np.asarray(self._vectors[np.asarray(rows, dtype=np.int64)], dtype=np.float32)

    def save(self, folder: Path) -> None:
        """Write the FAISS index to folder/vectors.faiss and the vectors to folder/unit_vectors.npy."""
        _faiss().write_index(self._index, str(Path(folder) / VECTORS_FILE))
        np.save(Path(folder) / UNIT_VECTORS_FILE, self._vectors)


def ivf_lists(size: int) -> int:
    """Return the number of IVF lists for `size` vectors: about 4 sqrt(n), each list trainable."""
    return max(1, min(int(4 * np.sqrt(size)), size // _TRAINING_PER_LIST))


def build_store(vectors: np.ndarray, kind: str = "flat", seed: int = 0) -> FaissStore:
    """Return a store holding `vectors` (rows already unit length), exact or approximate by `kind`."""
    if kind not in DENSE_KINDS:
        raise ValueError(f"unknown dense index kind {kind!r}: use one of {', '.join(DENSE_KINDS)}")
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        lists = ivf_lists(len(vectors))
        index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, lists,
                                              faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        # A sample of ~64 points per list trains k-means as well as the whole set, much faster.
        rng = np.random.default_rng(seed)
        sample = min(len(vectors), 64 * lists)
        index.train(vectors[np.sort(rng.choice(len(vectors), sample, replace=False))])
    index.add(vectors)
    _tune(index, kind)
    return FaissStore(index, kind, vectors)


def load_store(folder: Path, kind: str) -> FaissStore:
    """Return the store saved in `folder`; raise DamagedStoreFile naming the file that is unreadable or wrong."""
    if kind not in DENSE_KINDS:
        raise ValueError(f"unknown dense index kind {kind!r}: use one of {', '.join(DENSE_KINDS)}")
    try:
        index = _faiss().read_index(str(Path(folder) / VECTORS_FILE))
    except RuntimeError as exc:  # FAISS's own message is a C++ stack position
        raise DamagedStoreFile(VECTORS_FILE, "FAISS cannot read it") from exc
    _tune(index, kind)
    try:
        vectors = np.load(Path(folder) / UNIT_VECTORS_FILE, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # bytes on disk can break numpy's reader in any way
        raise DamagedStoreFile(UNIT_VECTORS_FILE, str(exc) or type(exc).__name__) from exc
    if vectors.shape != (index.ntotal, index.d) or vectors.dtype != np.float32:
        raise DamagedStoreFile(UNIT_VECTORS_FILE, f"shape {vectors.shape} {vectors.dtype}, "
                               f"not ({index.ntotal}, {index.d}) float32 as in {VECTORS_FILE}")
    return FaissStore(index, kind, vectors)


def _tune(index, kind: str) -> None:
    # Search settings are set on every load, so a saved index follows the current defaults.
    if kind == "hnsw":
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivf_sq8":
        index.nprobe = min(IVF_NPROBE, index.nlist)


class FaissBackend:
    """FAISS for dense search and bm25s for keywords, saved in the build folder: its switch is the folder's."""

    def build(self, config: StoreConfig, index_dir: Path) -> FaissBuild:
        """Return the writes of one build (nothing to connect to)."""
        return FaissBuild()

    def valid_entry(self, entry: dict) -> bool:
        """True: the files are found in the build folder, the entry has nothing else to say."""
        return True

    def load(self, entry: dict, build: StoredBuild) -> tuple[FaissStore, BM25Index]:
        """Return the build's FAISS and bm25s stores; raise DamagedStoreFile naming the file that is damaged."""
        with reading(VECTORS_FILE):  # load_store names unit_vectors.npy itself when that one is damaged
            dense = load_store(build.folder, build.kind)
            check_dense(dense, build)
        with reading(BM25_FOLDER):
            keywords = BM25Index.load(build.folder, len(build.chunk_ids))
        return dense, keywords


class FaissBuild:
    """The FAISS and bm25s files of one build, written into its folder."""

    def __init__(self) -> None:
        self._background: BackgroundBuild | None = None

    def index_keywords(self, texts: list[str], words: list[str], folder: Path, background: bool,
                       progress: Progress | None = None) -> None:
        """Build the BM25 index of `texts` into `folder`, in another process when `background`."""
        # BM25 is jieba's pure-Python work (~2 s on the seeds); while a long embedding runs, another
        # process does it on the spare core.
        if background:
            self._background = BackgroundBuild(texts, words, folder)
            return
        if progress:
            progress("bm25", 0, 1)
        build_and_save(texts, words, folder)

    def dense_kind(self, kind: str) -> str:
        """Return `kind`: FAISS builds every kind."""
        return kind

    def publish(self, build: BuildVectors) -> dict:
        """Save the FAISS index and the vectors, wait for the BM25 index; return the manifest entry's fields."""
        build_store(build.vectors, build.kind).save(build.folder)
        if self._background is not None:
            self._background.wait()
        return {}

    def switch(self) -> None:
        """Nothing to do: switching the index folder's CURRENT made the files live."""

    def cancel(self) -> None:
        """Stop the background BM25 build, if one runs."""
        if self._background is not None:
            self._background.cancel()
