"""`rag bench --store qdrant`: the search backends side by side on synthetic corpora of 10k and 100k passages.

Per backend (FAISS + bm25s; embedded Qdrant in memory and, up to `disk_max`, on disk) and size: build
seconds, dense and keyword query latency p50/p95, and bytes per passage (on disk, and the process's
resident-memory growth). A passage is one point: a dense vector near a real seed embedding
(`search.perturbed_vectors`, nothing embedded) and the project's tokens of 200-400 characters of
recombined seed sentences (as `search.bm25_scale` makes them), built through the stores' own code
(`stores.faiss.build_store`, `BM25Index`, `stores.qdrant.publish_tokens` and `open_stores`).

Embedded Qdrant (qdrant-client's local mode) searches by brute force in Python and numpy, with no HNSW
graph and no inverted index for the sparse vectors: its figures are the embedded mode's, not a server's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.bench.common import (DEFAULT_GOLD, BenchReport, load_average, machine, markdown_table, note_load, out_folder,
                              read_questions)
from rag.bench.search import perturbed_vectors
from rag.paths import SEEDS
from rag.types import jsonable

DENSE_K, KEYWORD_K = 10, 30
MIN_QUERIES = 3


@dataclass(frozen=True)
class StoreBenchConfig:
    """Corpus sizes and query counts; `quick_run()` is CI-sized."""

    sizes: tuple[int, ...] = (10_000, 100_000)
    disk_max: int = 10_000  # embedded on-disk Qdrant writes every point through SQLite: skipped above
    queries: int = 50  # per backend, size and search kind, unless `query_budget_s` runs out first
    query_budget_s: float = 60.0  # embedded Qdrant's sparse search takes seconds per query at 100k
    quick: bool = False
    out_dir: Path | None = None  # None: $RAG_HOME/reports/bench
    index_dir: Path | None = None  # an index whose vectors and chunks seed the corpora; None: build the seeds
    docs_dir: Path = SEEDS
    gold: Path = DEFAULT_GOLD
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.sizes or any(n < 1000 for n in self.sizes):
            raise ValueError("synthetic corpora need at least 1000 passages")
        if self.queries < MIN_QUERIES or self.query_budget_s <= 0:
            raise ValueError(f"queries must be >= {MIN_QUERIES} and query_budget_s positive")

    @classmethod
    def quick_run(cls, **overrides) -> StoreBenchConfig:
        """Return the settings of a quick run: 2,000 passages, in memory and on disk, few queries."""
        return cls(**{"sizes": (2_000,), "disk_max": 2_000, "queries": 10, "query_budget_s": 10.0,
                      "quick": True, **overrides})


def run(config: StoreBenchConfig, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure every backend at every size of `config`, write JSON and markdown, and return them."""
    from rag.index.stores import qdrant

    qdrant.connect(qdrant.Location(path=":memory:"))  # a missing qdrant-client fails before any work
    say = progress or (lambda message: None)
    began = time.perf_counter()
    results: dict = {"config": jsonable(dataclasses.asdict(config)),
                     "machine": machine(("numpy", "faiss", "bm25s")), "notes": []}
    results["machine"]["versions"]["qdrant_client"] = importlib.metadata.version("qdrant-client")
    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-store-"))
    try:
        index = _seed_index(config, workdir, say)
        base = index.dense.vectors(range(index.dense.size))
        sentences = _sentence_tokens(index)
        questions = read_questions(config.gold, None)
        rows = []
        for size in config.sizes:
            say(f"store: {size:,} synthetic passages")
            vectors = perturbed_vectors(base, size, config.seed)
            tokens = synthetic_passages(sentences, size, config.seed)
            queries = perturbed_vectors(base, config.queries, config.seed + 1)
            rows.append(_faiss_bm25(vectors, tokens, queries, questions, config))
            rows.append(_qdrant(":memory:", vectors, tokens, queries, questions, config, workdir))
            if size <= config.disk_max:
                rows.append(_qdrant(str(workdir / f"qdrant-{size}"), vectors, tokens, queries, questions, config,
                                    workdir))
            for row in rows[-3:]:
                if row["size"] == size:
                    say(f"  {row['backend']}: build {row['build_s']} s, dense p50 {row['dense_p50_ms']} ms, "
                        f"keyword p50 {row['keyword_p50_ms']} ms")
        results["stores"] = rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["notes"].append("embedded Qdrant (qdrant-client local mode) searches by brute force in Python/numpy: "
                            "no HNSW graph, and every sparse query scores every point in Python; a Qdrant server "
                            "(Rust, HNSW, an inverted index for sparse vectors) is a different engine")
    if any(n > config.disk_max for n in config.sizes):
        results["notes"].append(f"embedded Qdrant on disk skipped above {config.disk_max:,} passages: it writes "
                                "every point through SQLite")
    note_load(results, "wall-clock figures are inflated; the load average is given beside each row")
    results["seconds"] = round(time.perf_counter() - began, 1)
    return write(results, config)


def synthetic_passages(sentences: list[list[str]], size: int, seed: int = 0) -> list[list[str]]:
    """Return `size` token lists, each the tokens of ~200-400 characters of random seed sentences."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(size):
        picked: list[str] = []
        chars, wanted = 0, 200 + int(rng.integers(0, 200))
        while chars < wanted:
            tokens = sentences[int(rng.integers(0, len(sentences)))]
            picked.extend(tokens)
            chars += sum(len(t) for t in tokens)
        out.append(picked or ["\u2400"])
    return out


def _seed_index(config: StoreBenchConfig, workdir: Path, say: Callable[[str], None]):
    from rag.config import StoreConfig
    from rag.index import build_index, load_index

    folder = config.index_dir
    if folder is None:
        say("store: indexing the seeds for their embeddings and sentences")
        folder = workdir / "index"
        build_index(config.docs_dir, folder, store=StoreConfig())
    return load_index(folder)


def _sentence_tokens(index) -> list[list[str]]:
    from rag import text as textmod

    sentences = [c.text[s:e] for c in index.chunks for s, e in textmod.sentence_spans(c.text)]
    return [tokens for tokens in (textmod.tokenize(s) for s in sentences) if tokens]


def _faiss_bm25(vectors, tokens, queries, questions, config: StoreBenchConfig) -> dict:
    from rag.index.stores.bm25 import BM25Index
    from rag.index.stores.faiss import build_store

    before, load = _resident(), load_average()
    began = time.perf_counter()
    dense = build_store(vectors, "flat")
    keywords = BM25Index.from_tokens(tokens)
    build_s = time.perf_counter() - began
    grown = _resident() - before
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as folder:
        dense.save(Path(folder))
        keywords.save(Path(folder))
        disk = _folder_bytes(Path(folder))
    return _row("faiss + bm25s", len(tokens), build_s, disk, grown, load, dense, keywords, queries, questions, config)


def _qdrant(path: str, vectors, tokens, queries, questions, config: StoreBenchConfig, workdir: Path) -> dict:
    from rag.index.stores import qdrant

    location = qdrant.Location(path=path)
    client = qdrant.connect(location)
    folder = Path(tempfile.mkdtemp(prefix="terms-", dir=workdir))
    units = np.array([(i, 0, 1) for i in range(len(tokens))], dtype=np.int32)  # each passage one whole unit
    ids = [str(i) for i in range(len(tokens))]
    before, load = _resident(), load_average()
    began = time.perf_counter()
    name = qdrant.publish_tokens(location, "bench", dt.datetime.now().strftime("%H%M%S%f"), units, ids, vectors,
                                 tokens, True, folder)
    build_s = time.perf_counter() - began
    grown = _resident() - before
    disk = _folder_bytes(Path(path)) if path != ":memory:" else None
    dense, keywords = qdrant.open_stores(location, name, folder, ids, "flat", len(tokens))
    label = "qdrant embedded, in memory" if path == ":memory:" else "qdrant embedded, on disk"
    try:
        return _row(label, len(tokens), build_s, disk, grown, load, dense, keywords, queries, questions, config)
    finally:
        del dense, keywords
        client.delete_collection(name)
        if path != ":memory:":
            qdrant.close_client(location)


def _row(backend: str, size: int, build_s: float, disk: int | None, grown: int, load: float, dense, keywords,
         queries, questions, config: StoreBenchConfig) -> dict:
    dense_ms = _timed([lambda q=q: dense.search(q[None, :], DENSE_K) for q in queries], config)
    keyword_ms = _timed([lambda q=q: keywords.search(q, KEYWORD_K) for q in questions[:config.queries]], config)
    return {"backend": backend, "size": size, "build_s": round(build_s, 2),
            "disk_bytes_per_passage": round(disk / size) if disk is not None else None,
            "memory_bytes_per_passage": round(max(grown, 0) / size),
            **_percentiles("dense", dense_ms), **_percentiles("keyword", keyword_ms),
            "load_before": load, "load_after": load_average()}


def _timed(calls: list[Callable[[], object]], config: StoreBenchConfig) -> list[float]:
    calls[0]()  # warm: first-use imports and caches are not a query's cost
    spent, out = time.perf_counter(), []
    for call in calls:
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
        if len(out) >= MIN_QUERIES and time.perf_counter() - spent > config.query_budget_s:
            break
    return out


def _percentiles(kind: str, ms: list[float]) -> dict:
    return {f"{kind}_p50_ms": round(float(np.percentile(ms, 50)), 2),
            f"{kind}_p95_ms": round(float(np.percentile(ms, 95)), 2), f"{kind}_queries": len(ms)}


def _resident() -> int:
    # Resident set size; Python and numpy hand freed memory back lazily, so growth is indicative only.
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * 4096


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# --- output ------------------------------------------------------------------------------------


def write(results: dict, config: StoreBenchConfig) -> BenchReport:
    """Write DIR/<stamp>-store.json and the markdown (a full run also DIR/store-latest.md); return where."""
    out = out_folder(config.out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if config.quick else "")
    json_path = out / f"{stamp}-store.json"
    json_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    markdown = format_markdown(results)
    latest = None
    if not config.quick:
        latest = out / "store-latest.md"
        latest.write_text(markdown, encoding="utf-8")
    return BenchReport(results, json_path, None, latest, markdown)


def format_markdown(results: dict) -> str:
    """Return the store comparison as a markdown table, headed by the machine and its load."""
    m = results["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; faiss {m['versions'].get('faiss')}, bm25s "
             f"{m['versions'].get('bm25s')}, qdrant-client {m['versions'].get('qdrant_client')}; {m['when']}; "
             f"load average {m['load_before']} before, {m['load_after']} after"
             + (" (quick run)" if results["config"]["quick"] else ""), "",
             f"Search backends over synthetic passages (dense top-{DENSE_K} of perturbed seed embeddings, keyword "
             f"top-{KEYWORD_K} of gold questions; ms p50 / p95 over n queries; bytes per passage on disk and "
             "in resident memory):", ""]
    lines += markdown_table(
        ["passages", "backend", "build s", "dense ms", "keyword ms", "disk B/passage", "memory B/passage", "load"],
        [[f"{r['size']:,}", r["backend"], r["build_s"],
          f"{r['dense_p50_ms']} / {r['dense_p95_ms']} (n={r['dense_queries']})",
          f"{r['keyword_p50_ms']} / {r['keyword_p95_ms']} (n={r['keyword_queries']})",
          "–" if r["disk_bytes_per_passage"] is None else f"{r['disk_bytes_per_passage']:,}",
          f"{r['memory_bytes_per_passage']:,}", f"{r['load_before']}–{r['load_after']}"] for r in results["stores"]])
    if results["notes"]:
        lines += [""] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"
