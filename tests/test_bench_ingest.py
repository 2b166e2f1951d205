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
