"""Tables recovered from a PDF's text layer: ruled and unruled, one passage per row, cited by page, table, row, column."""

from __future__ import annotations

import io
import json

import pytest

from rag.convert import pdf as pdfmod
from rag.convert import pdf_tables
from rag.answer import Answerer
from rag.kb import prepare_upload
from tests.documents import RUNNING_HEADER, table_pdf, text_pdf, two_column_pdf

pytest.importorskip("reportlab")


def _regions(upload) -> list[list]:
    return json.loads(upload.meta.decode("utf-8"))["regions"]


def test_ruled_table_rows_repeat_the_merged_header():
    upload = prepare_upload("渡轮统计.pdf", table_pdf())
    text = upload.data.decode("utf-8")
    assert "表1 渡轮技术参数\n船名：渝智一号；运力·载客量：120人；" in text
    assert "\n船名：渝智二号；运力·载客量：86人；运力·最高航速：22公里每小时；首航日期：2026年5月2日。\n" in text
    regions = _regions(upload)
    page2 = next(r for r in regions if r[:1] == ["page"] and r[3] == "第2页")
    table = next(r for r in regions if r[0] == "table" and r[3] == "表1 渡轮技术参数")
    rows = [r for r in regions if r[0] == "row" and table[1] <= r[1] < table[2]]
    assert page2[1] <= table[1] < table[2] <= page2[2]
    assert [r[3] for r in rows] == ["第3行", "第4行", "第5行"]  # the header is two rows deep
    assert text[rows[1][1]:rows[1][2]].startswith("船名：渝智二号；") and text[rows[1][1]:rows[1][2]].endswith("。")
    assert "上表数据截至二〇二六年六月。" in text  # the text around the table stays


def test_unruled_aligned_columns_become_rows():
    text = prepare_upload("渡轮统计.pdf", table_pdf()).data.decode("utf-8")
    assert "表2 各码头日均客流\n码头：朝天门；工作日：3200人次；周末：5100人次。\n" in text
    assert "码头：北碚；工作日：900人次；周末：1500人次。" in text
    assert "各码头日均客流如下表，周末客流明显高于工作日。" in text and "节假日客流另行统计。" in text


def test_pdf_without_tables_is_unchanged(monkeypatch):
    with_tables = {name: prepare_upload("a.pdf", make()) for name, make in [("prose", text_pdf), ("columns", two_column_pdf)]}
    monkeypatch.setattr(pdfmod, "_pdf_tables", lambda *args: pdf_tables.TablePages({}))
    for name, make in [("prose", text_pdf), ("columns", two_column_pdf)]:
        plain = prepare_upload("a.pdf", make())
        assert with_tables[name].data == plain.data, name
        assert not any(r[0] in ("table", "row") for r in _regions(with_tables[name]))


def test_two_column_prose_and_a_title_date_line_are_not_tables():
    import pdfplumber

    with pdfplumber.open(io.BytesIO(two_column_pdf())) as pdf:
        assert pdf_tables.page_blocks(pdf.pages[0]) == [_plain_lines(pdf.pages[0])]
    with pdfplumber.open(io.BytesIO(text_pdf())) as pdf:
        assert all(pdf_tables.page_blocks(page) == [_plain_lines(page)] for page in pdf.pages)
    assert pdf_tables.find_tables(two_column_pdf(), set()).pages == {}


def _plain_lines(page) -> str:
    return "\n".join(line["text"].strip() for line in page.extract_text_lines())


def test_a_failing_table_reader_keeps_the_text(monkeypatch):
    def broken(data, skip):
        raise ValueError("bad content stream")

    monkeypatch.setattr(pdf_tables, "find_tables", broken)
    text = prepare_upload("渡轮统计.pdf", table_pdf()).data.decode("utf-8")
    assert "渝智二号" in text and "22公里每小时" in text and "船名：" not in text


def test_past_the_time_budget_pages_keep_their_running_text(monkeypatch):
    monkeypatch.setattr(pdf_tables, "TABLE_SECONDS", 0.0)
    upload = prepare_upload("渡轮统计.pdf", table_pdf())
    assert "船名：" not in upload.data.decode("utf-8") and "渝智二号" in upload.data.decode("utf-8")
    assert "第1页起未识别表格（超出识别时限）" in upload.meta.decode("utf-8")


def test_question_about_a_pdf_table_cell_is_cited_by_page_table_row_and_column(kb):
    kb.add("渡轮统计.pdf", table_pdf())
    doc = kb.index.documents["渡轮统计"]
    # Running header and page numbers sit at the same edge of every page, so they are still dropped.
    assert doc.original.count(RUNNING_HEADER) == 3 and RUNNING_HEADER not in doc.text and "页" not in doc.text
    answer = Answerer(kb.index).run("渝智二号渡轮的最高航速是多少？")
    assert not answer.abstained and "22公里每小时" in answer.text
    citation = answer.citations[0]
    assert citation.file == "渡轮统计.pdf" and citation.page == 2
    assert citation.location.startswith("第2页 表1 渡轮技术参数 第4行")
    assert citation.sentence.startswith("船名：渝智二号；")  # the whole row
    assert doc.original[citation.orig_start:citation.orig_end] == citation.sentence  # offsets map exactly
    if citation.answer_orig_start is not None:
        assert doc.original[citation.answer_orig_start:citation.answer_orig_end].startswith("22公里")
        assert citation.location.endswith("“运力·最高航速”列")
    pier = Answerer(kb.index).run("磁器口码头周末日均客流是多少人次？")
    assert "4300人次" in pier.text
    assert pier.citations[0].location.startswith("第3页 表2 各码头日均客流 第3行")
    row = next(r for r in kb.documents() if r.file == "渡轮统计.pdf")
    assert "第2、3页有表格" in row.note and "2个表格共6行" in row.note
