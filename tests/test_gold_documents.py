"""The gold questions over the issue-15 test documents (eval/gold_documents.jsonl over eval/documents/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.load import load_folder
from rag.text import squash

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "gold_documents.jsonl"
DOCS = ROOT / "eval" / "documents"


def _rows() -> list[dict]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["id"])
def test_each_question_is_grounded_in_its_document(row):
    text = squash((DOCS / row["doc"]).read_text(encoding="utf-8"))
    assert squash(row["evidence"]) in text
    assert any(squash(a) in squash(row["evidence"]) for a in row["answers"])


def test_the_documents_load_with_their_pages_and_rows():
    docs = {d.file: d for d in load_folder(DOCS).documents}
    assert {r.kind for r in docs["航运报告.txt"].regions} == {"page"}
    assert sum(r.kind == "row" for r in docs["港口吞吐量.txt"].regions) == 3
    assert any(r.kind == "ocr" for r in docs["渡轮扫描件.txt"].regions)
    assert sum(r.kind == "row" for r in docs["渡轮统计.txt"].regions) == 6 and docs["渡轮统计.txt"].page_of(0) == 1


def test_stored_conversions_match_what_the_converters_make_now():
    from rag.kb import prepare_upload
    from tests.documents import docx_with_table, table_pdf, text_pdf, xlsx_bytes

    for name, data in [("航运报告.pdf", text_pdf()), ("渡轮统计.pdf", table_pdf()), ("港口吞吐量.xlsx", xlsx_bytes()), ("渡轮一览.docx", docx_with_table())]:
        upload = prepare_upload(name, data)
        assert (DOCS / upload.name).read_bytes() == upload.data, f"run scripts/make_eval_documents.py ({name})"
