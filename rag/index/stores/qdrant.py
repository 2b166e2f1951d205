"""The Qdrant backend: one collection per build holds each unit's dense vector (cosine) and, for whole chunks,
a sparse vector of the project's own normalized tokens that Qdrant weighs with its IDF (`Modifier.IDF`).

Embedded (`path=` on disk, `":memory:"`) needs no server; `url=` points the same code at a server or
cluster. Tokenizing stays here, so Chinese words and Traditional/Simplified behave the same everywhere,
and so does reciprocal-rank fusion (rag/retrieve.py). The stored term weight is bm25s' own
tf / (tf + k1 (1 - b + b dl / avgdl)), so Qdrant's IDF ln(1 + (N - df + 0.5) / (df + 0.5)) times it is
bm25s' Lucene BM25: the same scores up to float rounding (tests/test_qdrant.py measures it).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag import text as textmod
from rag.config import StoreConfig, load_store_config
from rag.index.manifest import IndexProblem
from rag.index.stores.base import BuildVectors, Progress, StoredBuild, check_dense, reading

DENSE, SPARSE = "dense", "text"
TERMS_FILE = "terms.json"
# Point ids must be integers or UUIDs: uuid5 of the unit's id in this namespace; the real id is in the payload.
_POINT_NAMESPACE = uuid.UUID("8d0c6f0e-3b0a-5d0e-9a36-1c2a3f4e5b6d")
_EMPTY = "\u2400"  # as bm25s is given for a chunk without tokens (stores/bm25.py), so N counts it too
_BATCH = 256
K1, B = 1.2, 0.75  # bm25s' defaults, as BM25Index.build uses them

log = logging.getLogger(__name__)


class QdrantUnavailable(IndexProblem):
    """qdrant-client is not installed, or the Qdrant store cannot be reached or opened."""


def _qdrant():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError as exc:
        raise QdrantUnavailable("the Qdrant backend needs qdrant-client: pip install -e .[qdrant]") from exc
    return qdrant_client, models


@dataclass(frozen=True)
class Location:
    """Where the Qdrant store is: a server `url` (+ `api_key`), or an embedded `path` (or ":memory:")."""

    url: str = ""
    path: str = ""
    api_key: str = ""

    def describe(self) -> dict:
        """Return the location for the manifest (never the API key)."""
        return {"url": self.url} if self.url else {"path": self.path}


# One client per location and process: an embedded store may be opened only once per process (Qdrant
# locks its folder), and ":memory:" is one store only through one client.
_clients: dict[tuple[str, str], object] = {}


def connect(location: Location):
    """Return the (shared) client of `location`; raise QdrantUnavailable with what to do when it fails."""
    key = (location.url, location.path)
    if key not in _clients:
        qdrant_client, _ = _qdrant()
        try:
            if location.url:
                client = qdrant_client.QdrantClient(url=location.url, api_key=location.api_key or None, timeout=30)
            elif location.path == ":memory:":
                client = qdrant_client.QdrantClient(location=":memory:")
            else:
                Path(location.path).mkdir(parents=True, exist_ok=True)
                client = qdrant_client.QdrantClient(path=location.path)
        except RuntimeError as exc:  # the embedded store's folder is held by another process
            raise QdrantUnavailable(f"cannot open the Qdrant store at {location.path}: {exc}; an embedded store "
                                    "serves one process: stop the other one, or use a Qdrant server (url)") from exc
        if not _clients:
            import atexit

            atexit.register(close_clients)
        _clients[key] = client
    return _clients[key]


def close_client(location: Location) -> None:
    """Close the shared client of `location`, if one is open (an embedded folder is then free again)."""
    _close(_clients.pop((location.url, location.path), None))


def close_clients() -> None:
    """Close every client while the interpreter still runs (registered at exit): left to qdrant-client's
    __del__ at shutdown, an embedded store printed an ImportError traceback after every command."""
    while _clients:
        _close(_clients.popitem()[1])


def _close(client) -> None:
    if client is None:
        return
    try:
        client.close()
    except Exception:  # closing is best effort: the process is ending
        pass


def point_id(unit_id: str) -> str:
    """Return the Qdrant point id of a unit id."""
    return str(uuid.uuid5(_POINT_NAMESPACE, unit_id))


def unit_ids(chunk_ids: Sequence[str], units: np.ndarray) -> list[str]:
    """Return each unit's id: its chunk's id and its chunk-local span."""
    return [f"{chunk_ids[int(c)]}#{int(s)}-{int(e)}" for c, s, e in units]


def term_weights(token_lists: list[list[str]], k1: float = K1, b: float = B) -> list[dict[str, float]]:
    """Return bm25s' term-frequency component of each token of each text (IDF is left to Qdrant)."""
    lengths = np.array([len(t) for t in token_lists], dtype=np.float64)
    average = float(lengths.mean()) if len(lengths) else 1.0
    out = []
    for tokens, length in zip(token_lists, lengths):
        norm = k1 * ((1 - b) + b * length / average)
        out.append({t: tf / (norm + tf) for t, tf in Counter(tokens).items()})
    return out


def publish(location: Location, alias: str, build_id: str, units: np.ndarray, ids: list[str],
            vectors: np.ndarray, texts: list[str], exact: bool, folder: Path,
            shards: int = 0, replicas: int = 0) -> str:
    """Write a new collection for one build, save its term statistics in `folder`; return its name.

    The collection goes live (alias switched) only in `switch`, after the build's files are in place.
    Collections of killed and older builds (named after the alias, not the live one) are removed first,
    but for those a live index of this process still reads (see `switch`).
    """
    token_lists = [textmod.tokenize(t) or [_EMPTY] for t in texts]
    return publish_tokens(location, alias, build_id, units, ids, vectors, token_lists, exact, folder, shards, replicas)


def publish_tokens(location: Location, alias: str, build_id: str, units: np.ndarray, ids: list[str],
                   vectors: np.ndarray, token_lists: list[list[str]], exact: bool, folder: Path,
                   shards: int = 0, replicas: int = 0) -> str:
    """Return `publish` of chunks already tokenized (each with at least one token); `rag bench` times it."""
    client = connect(location)
    _, models = _qdrant()
    _drop_unused(client, location, alias, keep={_alias_target(client, alias)})
    name = f"{alias}-{build_id}"
    client.create_collection(
        name,
        vectors_config={DENSE: models.VectorParams(size=int(vectors.shape[1]), distance=models.Distance.COSINE)},
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        hnsw_config=None if not exact else models.HnswConfigDiff(m=0),  # exact: no graph to build
        shard_number=shards or None, replication_factor=replicas or None,
    )
    vocabulary: dict[str, int] = {}
    df: Counter[str] = Counter()
    for tokens in token_lists:
        df.update(set(tokens))
        for t in tokens:
            vocabulary.setdefault(t, len(vocabulary))
    weights = term_weights(token_lists)
    points = []
    for row, (chunk, start, end) in enumerate(units):
        vector = {DENSE: vectors[row].tolist()}
        if _is_whole(units, row):
            pairs = sorted((vocabulary[t], w) for t, w in weights[int(chunk)].items())
            vector[SPARSE] = models.SparseVector(indices=[i for i, _ in pairs], values=[w for _, w in pairs])
        points.append(models.PointStruct(id=point_id(ids[row]), vector=vector,
                                         payload={"unit": row, "unit_id": ids[row], "chunk": int(chunk)}))
        if len(points) >= _BATCH:
            client.upsert(name, points=points, wait=True)
            points = []
    if points:
        client.upsert(name, points=points, wait=True)
    tokens = sorted(vocabulary, key=vocabulary.get)
    (Path(folder) / TERMS_FILE).write_text(json.dumps(
        {"chunks": len(token_lists), "tokens": tokens, "df": [df[t] for t in tokens]}, ensure_ascii=False), encoding="utf-8")
    return name


def _is_whole(units: np.ndarray, row: int) -> bool:
    # The first unit of each chunk is the whole chunk (units.dense_units); sentences follow it.
    return row == 0 or int(units[row - 1][0]) != int(units[row][0])


def switch(location: Location, alias: str, name: str) -> None:
    """Point `alias` at collection `name` and drop the collections of older builds nothing reads any more.

    A running chat swaps to the new build only after this (rag/kb.py), and a question under way finishes
    on the index it took: a collection an Index of this process still holds is retired, and dropped when
    the last such Index is freed (`_release`). An embedded store serves one process (path lock, or
    ":memory:"), so this process knows every reader. A server may have readers in other processes, which
    adopt the new build before their next question: there the previous collection is kept until the next
    build publishes.
    """
    client = connect(location)
    _, models = _qdrant()
    old = _alias_target(client, alias)
    operations = [models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))]
    if old is not None:
        operations.insert(0, models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
    client.update_collection_aliases(change_aliases_operations=operations)
    _drop_unused(client, location, alias, keep={name, old} if location.url else {name})


# Collections that live indexes of this process read, counted per opened Index; retired ones (no longer
# live) are dropped by the last reader's release. Guarded by _readers_lock: finalizers run in any thread.
_readers: Counter[tuple[str, str, str]] = Counter()
_retired: set[tuple[str, str, str]] = set()
_readers_lock = threading.Lock()


class _Lease:
    """Held by the two stores of one opened Index: while it lives, its collection is not dropped."""


def _key(location: Location, name: str) -> tuple[str, str, str]:
    return (location.url, location.path, name)


def _lease(location: Location, name: str) -> _Lease:
    lease = _Lease()
    with _readers_lock:
        _readers[_key(location, name)] += 1
    # Not at exit: the client may be closed by then; the next build drops what is left.
    weakref.finalize(lease, _release, location, name).atexit = False
    return lease


def _release(location: Location, name: str) -> None:
    key = _key(location, name)
    with _readers_lock:
        _readers[key] -= 1
        if _readers[key] > 0 or key not in _retired:
            return
        del _readers[key]
        _retired.discard(key)
    try:
        connect(location).delete_collection(name)
    except Exception as exc:  # a finalizer must not raise; the next build drops it instead
        log.warning("could not drop the retired Qdrant collection %s: %s", name, exc)


def _drop_unused(client, location: Location, alias: str, keep: set[str | None]) -> None:
    for description in client.get_collections().collections:
        name = description.name
        if not name.startswith(f"{alias}-") or name in keep:
            continue
        with _readers_lock:
            if _readers[_key(location, name)] > 0:
                _retired.add(_key(location, name))
                continue
        client.delete_collection(name)


def _alias_target(client, alias: str) -> str | None:
    for description in client.get_aliases().aliases:
        if description.alias_name == alias:
            return description.collection_name
    return None


class QdrantDense:
    """Dense search over one build's collection; results are unit rows, as FAISS gives them."""

    def __init__(self, client, collection: str, ids: list[str], kind: str, remote: bool, lease: _Lease) -> None:
        self._client = client
        self._lease = lease
        self._remote = remote
        self._collection = collection
        self._ids = ids
        self.kind = kind
        info = client.get_collection(collection)
        self.dim = int(info.config.params.vectors[DENSE].size)
        self.size = int(client.count(collection, exact=True).count)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, unit rows) of the k nearest stored vectors per query; missing rows are -1."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        _, models = _qdrant()
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        k = min(k, max(self.size, 1))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        # Embedded Qdrant always searches exactly (and warns about search parameters); a server is told to.
        params = models.SearchParams(exact=self.kind == "flat") if self._remote else None
        for q, query in enumerate(queries):
            found = self._client.query_points(self._collection, query=query.tolist(), using=DENSE, limit=k,
                                              search_params=params, with_payload=["unit"]).points
            for j, point in enumerate(_in_faiss_order(found, "unit", descending=True)):
                scores[q, j], rows[q, j] = point.score, point.payload["unit"]
        return scores, rows

    def vectors(self, rows: Sequence[int]) -> np.ndarray:
        """Return the stored vectors of `rows`, (len(rows), dim) float32."""
        wanted = [point_id(self._ids[int(r)]) for r in rows]
        found = {p.id: p.vector[DENSE] for p in self._client.retrieve(self._collection, ids=wanted, with_vectors=[DENSE])}
        return np.array([found[w] for w in wanted], dtype=np.float32).reshape(len(wanted), self.dim)


class QdrantKeywords:
    """BM25 over chunks through the collection's sparse vectors; term statistics from the build's terms.json."""

    def __init__(self, client, collection: str, folder: Path, size: int, lease: _Lease) -> None:
        self._client = client
        self._lease = lease
        self._collection = collection
        terms = json.loads((Path(folder) / TERMS_FILE).read_text(encoding="utf-8"))
        tokens, df = terms["tokens"], terms["df"]
        if terms["chunks"] != size or len(tokens) != len(df) or not all(type(d) is int and d > 0 for d in df):
            raise ValueError(f"{TERMS_FILE} does not describe {size} chunks")
        self._vocabulary = {t: i for i, t in enumerate(tokens)}
        self._df = df
        self.size = size

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (chunk position, score) pairs, best first; none when no query token is known."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        _, models = _qdrant()
        counts = Counter(self._vocabulary[t] for t in textmod.tokenize(query) if t in self._vocabulary)
        if not counts:
            return []
        pairs = sorted(counts.items())
        found = self._client.query_points(
            self._collection, query=models.SparseVector(indices=[i for i, _ in pairs], values=[float(c) for _, c in pairs]),
            using=SPARSE, limit=k, with_payload=["chunk"]).points
        return [(int(p.payload["chunk"]), float(p.score)) for p in _in_faiss_order(found, "chunk", descending=False) if p.score > 0]

    def knows(self, token: str) -> bool:
        """True when some indexed chunk contains `token`."""
        return token in self._vocabulary

    def idf(self, token: str) -> float:
        """Return log((N + 1) / (df + 0.5)) of a normalized token; unseen tokens get the highest value."""
        column = self._vocabulary.get(token)
        df = self._df[column] if column is not None else 0
        return float(np.log((self.size + 1) / (df + 0.5)))


def _in_faiss_order(points: list, field: str, descending: bool) -> list:
    # Equal scores (duplicate sentences, equal BM25 sums) come back from Qdrant in no set order; bm25s lists
    # them by ascending row, FAISS's heap by descending row. Scores equal to float32 rounding (they differ
    # by up to 2e-6 between the engines: tests/test_qdrant.py) count as equal.
    sign = -1 if descending else 1
    return sorted(points, key=lambda p: (-round(p.score, 5), sign * p.payload[field]))


def open_stores(location: Location, collection: str, folder: Path, ids: list[str], kind: str,
                chunks: int) -> tuple[QdrantDense, QdrantKeywords]:
    """Return the dense and keyword stores of one build's collection; raise ValueError when it is gone."""
    client = connect(location)
    if not client.collection_exists(collection):
        raise ValueError(f"the Qdrant collection {collection} is missing")
    lease = _lease(location, collection)
    return (QdrantDense(client, collection, ids, kind, bool(location.url), lease),
            QdrantKeywords(client, collection, folder, chunks, lease))


def location_for(config: StoreConfig, index_dir: Path) -> Location:
    """Return where a build of `index_dir` goes: the server, the configured path, or <index>/qdrant."""
    if config.url:
        return Location(url=config.url, api_key=config.api_key)
    if config.path == ":memory:":
        return Location(path=":memory:")
    return Location(path=str(Path(config.path or Path(index_dir) / "qdrant").resolve()))


class QdrantBackend:
    """A collection per build, published under an alias; only the term statistics stay in the build folder."""

    def build(self, config: StoreConfig, index_dir: Path) -> QdrantBuild:
        """Return the writes of one build; connect first, so a missing client or a busy folder fails before any work."""
        location = location_for(config, index_dir)
        connect(location)
        return QdrantBuild(location, config.collection, config.shards, config.replicas)

    def valid_entry(self, entry: dict) -> bool:
        """True when the entry names its collection and a server url or an embedded path."""
        return isinstance(entry.get("collection"), str) and isinstance(entry.get("url", entry.get("path")), str)

    def load(self, entry: dict, build: StoredBuild) -> tuple[QdrantDense, QdrantKeywords]:
        """Return the stores of the build's collection; raise DamagedStoreFile when it is missing or disagrees."""
        with reading("Qdrant collection"):  # a missing client says so itself (QdrantUnavailable)
            location = Location(url=str(entry.get("url", "")), path=str(entry.get("path", "")), api_key=_api_key())
            dense, keywords = open_stores(location, str(entry["collection"]), build.folder,
                                          unit_ids(build.chunk_ids, build.units), build.kind, len(build.chunk_ids))
            check_dense(dense, build)
        return dense, keywords


def _api_key() -> str:
    try:
        return load_store_config().api_key
    except ValueError:  # a bad [store] setting concerns the next build, not this one
        return ""


class QdrantBuild:
    """One build's collection: published beside the live one, switched to after the index folder's CURRENT."""

    def __init__(self, location: Location, alias: str, shards: int, replicas: int) -> None:
        self._location, self._alias, self._shards, self._replicas = location, alias, shards, replicas
        self._texts: list[str] = []
        self._collection = ""

    def index_keywords(self, texts: list[str], words: list[str], folder: Path, background: bool,
                       progress: Progress | None = None) -> None:
        """Teach the tokenizer `words`; the sparse vectors of `texts` are made by `publish`."""
        textmod.add_words(words)
        self._texts = texts

    def dense_kind(self, kind: str) -> str:
        """Return "flat" (exact search) or "hnsw" (Qdrant's graph) for any other kind."""
        return "flat" if kind == "flat" else "hnsw"

    def publish(self, build: BuildVectors) -> dict:
        """Write the build's collection and its terms.json; return the manifest entry's fields."""
        ids = unit_ids(build.chunk_ids, build.units)
        self._collection = publish(self._location, self._alias, build.build_id, build.units, ids, build.vectors,
                                   self._texts, build.kind == "flat", build.folder, self._shards, self._replicas)
        return {"collection": self._collection, "alias": self._alias, **self._location.describe()}

    def switch(self) -> None:
        """Point the alias at the new collection, for clients of the server (问渝 reads the manifest's)."""
        switch(self._location, self._alias, self._collection)

    def cancel(self) -> None:
        """Nothing to stop: the next build's `publish` drops this build's collection."""
