"""`rag bench --load`: its bounds, its loopback-only rule, its figures, and one real run."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from rag.bench.load import LoadConfig, check_loopback, format_markdown, run, summarize
from rag.cli import main


def test_only_this_machine_is_loaded():
    for url in ("http://127.0.0.1:7860", "http://127.0.0.2:80/", "http://[::1]:7860", "http://localhost:7860"):
        assert check_loopback(url) == url.rstrip("/")
    for url in ("http://10.0.0.1:7860", "http://0.0.0.0:7860", "http://127.0.0.1.example.com", "ftp://127.0.0.1",
                "http://example.com"):
        with pytest.raises(ValueError, match="this machine only"):
            check_loopback(url)
    with pytest.raises(ValueError, match="this machine only"):
        LoadConfig(url="http://192.168.1.2:7860")


def test_every_run_is_bounded():
    with pytest.raises(ValueError, match="clients must be from 1 to 64"):
        LoadConfig(clients=0)
    with pytest.raises(ValueError, match="clients must be from 1 to 64"):
        LoadConfig(clients=65)
    with pytest.raises(ValueError, match="seconds must be above 0 and at most 3600"):
        LoadConfig(seconds=0)
    with pytest.raises(ValueError, match="seconds must be above 0 and at most 3600"):
        LoadConfig(seconds=7200)
    with pytest.raises(ValueError, match="max_requests must be at least 1"):
        LoadConfig(max_requests=0)
    quick = LoadConfig.quick_run(clients=3)
    assert (quick.clients, quick.seconds, quick.quick) == (3, 5.0, True)


def test_summary_counts_errors_apart_from_latencies():
    samples = [(0, 0.0, 0.1, None), (0, 0.1, 0.3, None), (1, 0.0, 0.2, None), (1, 0.2, 9.0, "TimeoutError: ")]
    stats = summarize(samples, elapsed=2.0, clients=3)
    assert (stats["requests"], stats["ok"], stats["errors"]) == (4, 3, 1)
    assert stats["error_samples"] == ["TimeoutError: "] and stats["per_client"] == [2, 2, 0]
    assert (stats["p50_ms"], stats["max_ms"], stats["answers_per_s"]) == (200.0, 300.0, 1.5)  # the failure's 9 s is not a latency
    assert summarize([], 1.0, 1)["p50_ms"] is None


def test_markdown_gives_the_figures_and_the_document_check():
    results = {
        "config": {"clients": 8, "seconds": 30.0, "churn": True, "quick": False},
        "machine": {"cpu": "AMD EPYC", "cores": 2, "load_before": 4.1, "load_after": 4.3, "when": "2026-11-24"},
        "server": {"url": "http://127.0.0.1:1234", "started": True, "startup_s": 41.0},
        "asks": {"requests": 120, "errors": 0, "answers_per_s": 3.9, "p50_ms": 1800.0, "p95_ms": 4100.0,
                 "max_ms": 5200.0, "error_samples": []},
        "churn": {"uploads": 3, "refused": 3, "deletes": 3, "errors": [], "upload_s": {"p50": 2.1, "max": 3.0},
                  "delete_s": {"p50": 1.9, "max": 2.5}},
        "documents": {"before": 5, "after": 5, "expected": 5, "consistent": True, "on_disk": 5},
        "upload_leftovers": [], "seconds": 31.2, "stuck": [], "notes": ["other processes were using the CPU"],
    }
    markdown = format_markdown(results)
    assert "| 8 | 31.2 | 120 | 0 | 3.9 | 1800.0 | 4100.0 | 5200.0 |" in markdown
    assert "5 before, 5 after (expected 5 = 5 + 3 uploads - 3 deletes: consistent)" in markdown
    assert "3 duplicate uploads refused" in markdown and "Gradio's upload folder: 0" in markdown
    assert "load average 4.1 before, 4.3 after" in markdown and "- other processes" in markdown


def test_load_options_need_load_and_urls_must_be_loopback(capsys):
    assert main(["bench", "--clients", "3"]) == 2
    assert "--clients apply to the load test only: add --load" in capsys.readouterr().err
    assert main(["bench", "--load", "--url", "http://10.1.2.3:7860"]) == 2
    assert "this machine only" in capsys.readouterr().err


@pytest.mark.slow  # starts a real `rag chat` (torch, the reader, the page): ~20 s on two idle cores, minutes when busy
def test_a_quick_load_run_gets_every_answer_and_keeps_the_documents_consistent(tmp_path, seeds_dir, seed_index_dir):
    cache = tmp_path / "cache"
    shutil.copytree(seed_index_dir / "cache", cache)  # the server's first build then embeds nothing
    config = LoadConfig.quick_run(out_dir=tmp_path / "out", docs_dir=seeds_dir, cache_dir=cache, pause=0.0,
                                  gold=seeds_dir.parent / "eval" / "gold.jsonl")
    report = run(config)
    results = report.results
    asks, churn, documents = results["asks"], results["churn"], results["documents"]
    assert asks["requests"] >= 2 and asks["errors"] == 0, asks["error_samples"]
    assert all(n >= 1 for n in asks["per_client"]) and 0 < asks["p50_ms"] <= asks["p95_ms"] <= asks["max_ms"]
    assert churn["errors"] == [] and churn["uploads"] == churn["deletes"] == churn["refused"] >= 1
    assert documents == {"before": 5, "after": 5, "expected": 5, "consistent": True, "on_disk": 5}
    assert results["upload_leftovers"] == [] and results["stuck"] == [] and report.passed
    assert json.loads(report.json_path.read_text(encoding="utf-8"))["documents"]["consistent"]
    assert report.latest_path is None and "(quick run)" in report.markdown
    with pytest.raises(ProcessLookupError):  # the server it started is gone
        os.kill(results["server"]["pid"], 0)


def test_the_documents_on_disk_are_every_type_the_index_reads(tmp_path):
    from rag.bench.load import Server

    server = Server(LoadConfig.quick_run(), tmp_path)
    (server.docs_dir / "年报").mkdir(parents=True)
    for name in ("a.txt", "b.md", "年报/c.pdf", "d.docx", "e.xlsx", "f.html", "g.png", "h.pptx", ".upload-1.part"):
        (server.docs_dir / name).write_bytes(b"x")
    assert sorted(p.name for p in server.document_files()) == ["a.txt", "b.md", "c.pdf", "d.docx", "e.xlsx", "f.html",
                                                                "g.png"]
