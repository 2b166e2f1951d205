"""`rag bench --ingest`: OCR seconds per page and table rows indexed per second, on inputs it makes itself."""

from __future__ import annotations

import pytest

from rag.bench import ingest as bench_ingest
from rag.convert import ocr


def test_ingest_bench_reports_ocr_per_page_and_table_rows_per_second(tmp_path):
    config = bench_ingest.IngestConfig.quick_run(pages=1, rows=20, out_dir=tmp_path)
    report = bench_ingest.run(config)
    tables = report.results["tables"]
    assert tables["rows"] == 20 and tables["chunks"] == 20 and tables["rows_per_s"] > 0  # one passage per row
    if bench_ingest.FONT.exists() and ocr.available():
        assert report.results["ocr"]["pages"] == 1 and report.results["ocr"]["agreement"] > 0.9
        assert "s per page" in report.markdown
    assert "rows indexed/s" in report.markdown and report.json_path.exists()
    pdf = report.results["pdf_tables"]  # every row of the ruled PDF tables comes back as a row passage
    assert pdf["rows_found"] == 20 and pdf["rows_per_s"] > 0 and "PDF rows converted/s" in report.markdown
    assert not (tmp_path / "ingest-latest.md").exists()  # a quick run does not stand for the figures


def test_ingest_config_refuses_empty_runs():
    with pytest.raises(ValueError, match="must be >= 1"):
        bench_ingest.IngestConfig(pages=0)


def test_rag_bench_writes_its_results_into_the_data_folder_not_the_checkout(tmp_path, monkeypatch, capsys):
    import functools
    from pathlib import Path

    from rag.cli import main

    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    # The cheapest real `rag bench`: the ingest figures over one page and 20 rows.
    small = functools.partial(bench_ingest.IngestConfig.quick_run, pages=1, rows=20)
    monkeypatch.setattr(bench_ingest.IngestConfig, "quick_run", small)
    tracked = Path(__file__).resolve().parents[1] / "bench" / "results"
    before = sorted(p.name for p in tracked.iterdir())
    assert main(["bench", "--ingest", "--quick"]) == 0
    [written] = (tmp_path / "home" / "reports" / "bench").iterdir()
    assert written.name.startswith("ingest-") and written.name.endswith("-quick.json")
    assert f"results: {written}" in capsys.readouterr().out
    assert sorted(p.name for p in tracked.iterdir()) == before
