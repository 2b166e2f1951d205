"""`rag bench --store qdrant` (rag/bench/store.py): both backends measured side by side in one run."""

import json

import pytest

from rag.bench.store import StoreBenchConfig, run, synthetic_passages

pytest.importorskip("qdrant_client")


@pytest.mark.slow  # builds 2,000-passage corpora on three backends and queries them
def test_quick_run_reports_every_backend_beside_faiss(tmp_path, seed_index_dir):
    report = run(StoreBenchConfig.quick_run(out_dir=tmp_path, index_dir=seed_index_dir))
    results = json.loads(report.json_path.read_text(encoding="utf-8"))
    assert report.latest_path is None and report.json_path.name.endswith("-quick-store.json")
    backends = [r["backend"] for r in results["stores"]]
    assert backends == ["faiss + bm25s", "qdrant embedded, in memory", "qdrant embedded, on disk"]
    for row in results["stores"]:
        assert row["size"] == 2_000 and row["build_s"] > 0 and row["load_before"] >= 0
        assert 0 < row["dense_p50_ms"] <= row["dense_p95_ms"] and 0 < row["keyword_p50_ms"] <= row["keyword_p95_ms"]
        assert row["dense_queries"] >= 3 and row["keyword_queries"] >= 3
    on_disk = {r["backend"]: r["disk_bytes_per_passage"] for r in results["stores"]}
    assert on_disk["faiss + bm25s"] >= 2 * 384 * 4  # the FAISS index and the exact vectors beside it
    assert on_disk["qdrant embedded, in memory"] is None and on_disk["qdrant embedded, on disk"] > 384 * 4
    assert "brute force" in report.markdown and "| 2,000 | qdrant embedded, on disk |" in report.markdown
    from rag.index.stores.qdrant import Location, connect

    assert not [c for c in connect(Location(path=":memory:")).get_collections().collections
                if c.name.startswith("bench-")]  # the bench leaves no collection behind


def test_synthetic_passages_are_seed_sentences_of_chunk_length():
    sentences = [["重庆", "人工智能"], ["产业", "基金", "规模"], ["两百亿元"]]
    passages = synthetic_passages(sentences, 50, seed=1)
    assert len(passages) == 50 and passages == synthetic_passages(sentences, 50, seed=1)
    assert all(200 <= sum(map(len, p)) < 420 and set(p) <= {t for s in sentences for t in s} for p in passages)


def test_bad_store_bench_settings_are_refused():
    with pytest.raises(ValueError, match="at least 1000 passages"):
        StoreBenchConfig(sizes=(500,))
    with pytest.raises(ValueError, match="queries must be >= 3"):
        StoreBenchConfig(queries=1)
