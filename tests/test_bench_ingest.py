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
    folder = report.results["folder"]  # 12 mixed files: nine indexed, three named with their reason
    assert (folder["files"], folder["indexed"], len(folder["skipped"]), folder["converted_rebuild"]) == (12, 9, 3, 1)
    assert "rebuild share" in report.markdown
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


def test_the_mixed_folder_is_indexed_whole_and_a_rebuild_after_one_edit_converts_only_it(tmp_path):
    docs = tmp_path / "docs"
    edited = bench_ingest.mixed_folder(docs, 11, with_ocr=False)  # eight kinds without OCR, and the three refused
    _, new_bytes = bench_ingest.mixed_file("pdf", 0, ["码头改造于今年完成。"])
    result = bench_ingest.folder_conversion(docs, tmp_path / "converted", edited, new_bytes)
    assert (result["files"], result["indexed"]) == (11, 8)  # every supported file indexed
    assert {name: reason.partition(":")[0] for name, reason in result["skipped"].items()} == {
        "汇报.pptx": "unsupported type", "归档.zip": "unsupported type", "损坏.pdf": "damaged"}
    # Six files are converted (the text files are read as they are), and the damaged one is tried once.
    assert result["converted_first"] == 7 and result["reconverted"] == [edited.name]
    assert result["rebuild_s"] <= result["first_s"] and result["target_share"] == 0.10
    markdown = bench_ingest.format_markdown({"when": "now", "config": {"quick": True}, "notes": [],
                                             "tables": {k: 0 for k in ("rows", "chunks", "convert_s", "index_s",
                                                                       "rows_per_s", "convert_rows_per_s")},
                                             "folder": result})
    assert "rebuild share (target ≤ 10 %)" in markdown and "- skipped 汇报.pptx: unsupported type" in markdown
