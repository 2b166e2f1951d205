"""Tables as row passages: .xlsx (merged headers, formulas), .csv, and tables inside .docx and .html."""

from __future__ import annotations

import pytest

from rag.answer import Answerer
from rag.kb import UploadError, prepare_upload
from tests.documents import docx_with_table, xlsx_bytes


def test_xlsx_rows_repeat_the_merged_header_and_take_cached_formula_values():
    upload = prepare_upload("港口.xlsx", xlsx_bytes())
    lines = upload.data.decode("utf-8").split("\n")
    assert upload.name == "港口.txt"
    assert lines == [
        "工作表“港口吞吐量”",
        "港区：果园港；货物吞吐量（万吨）·2024年：2870.4；货物吞吐量（万吨）·2025年：3125.6；备注：铁水联运枢纽。",
        "港区：寸滩港；货物吞吐量（万吨）·2024年：1180.2；货物吞吐量（万吨）·2025年：1106.9；备注：转型为邮轮母港。",
        "港区：合计；货物吞吐量（万吨）·2024年：4050.6；货物吞吐量（万吨）·2025年：4232.5。",  # =C3+C4, as cached
    ]


def test_formula_without_a_cached_value_is_left_out_and_said():
    upload = prepare_upload("港口.xlsx", xlsx_bytes(cached_total=None))
    assert "港区：合计。" in upload.data.decode("utf-8")
    assert "2个公式单元格没有计算结果" in upload.meta.decode("utf-8")


def test_csv_rows_become_passages():
    data = "船名,载客量,首航日期\n渝智一号,120人,2026年3月18日\n渝智二号,86人,2026年5月2日\n".encode("gb18030")
    text = prepare_upload("渡轮.csv", data).data.decode("utf-8")
    assert text.split("\n")[1:] == ["船名：渝智一号；载客量：120人；首航日期：2026年3月18日。",
                                    "船名：渝智二号；载客量：86人；首航日期：2026年5月2日。"]


def test_broken_spreadsheet_is_refused_in_chinese():
    with pytest.raises(UploadError, match="不是有效的 .xlsx"):
        prepare_upload("坏.xlsx", b"not a zip at all" * 20)


def test_html_table_with_spans_becomes_rows():
    page = ("<html><head><title>渡轮</title></head><body><article><h1>嘉陵江渡轮</h1><p>下表列出渡轮。</p>"
            "<table><caption>渡轮一览</caption><tr><th rowspan=2>船名</th><th colspan=2>运力</th></tr>"
            "<tr><th>载客量</th><th>航速</th></tr><tr><td>渝智一号</td><td>120人</td><td>25公里每小时</td></tr>"
            "</table></article></body></html>")
    text = prepare_upload("渡轮.html", page.encode("utf-8")).data.decode("utf-8")
    assert "船名：渝智一号；运力·载客量：120人；运力·航速：25公里每小时。" in text


def test_question_about_a_cell_is_answered_from_its_row_with_sheet_row_and_column(kb):
    kb.add("港口.xlsx", xlsx_bytes())
    answer = Answerer(kb.index).run("果园港2025年货物吞吐量是多少万吨？")
    assert not answer.abstained and "3125.6" in answer.short
    citation = answer.citations[0]
    assert citation.file == "港口.xlsx"
    assert citation.location == "工作表“港口吞吐量” 第3行 · “货物吞吐量（万吨）·2025年”列"
    # The quote is the whole row, so the value comes with what it is the value of.
    assert citation.sentence.startswith("港区：果园港；") and citation.sentence.endswith("。")
    original = kb.index.documents["港口"].original
    assert original[citation.answer_orig_start:citation.answer_orig_end] == "3125.6"
    total = Answerer(kb.index).run("各港区2025年货物吞吐量合计是多少万吨？")
    assert "4232.5" in total.text and "第5行" in total.citations[0].location
    row = next(r for r in kb.documents() if r.file == "港口.xlsx")
    assert "Excel，1个表，3行" in row.note and "1个表格共3行" in row.note


def test_docx_table_cell_is_cited_by_table_and_row(kb):
    kb.add("渡轮.docx", docx_with_table())
    answer = Answerer(kb.index).run("渝智二号渡轮的载客量是多少？")
    assert "86人" in answer.text
    assert answer.citations[0].location.startswith("表1 第3行")
    assert answer.to_dict()["citations"][0]["location"].startswith("表1 第3行")  # what /ask and --json return


def test_sparse_sheet_rows_keep_their_sheet_numbers():
    import io

    import openpyxl

    from rag.convert import convert

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "统计"
    for ref, value in {"A1": "港区", "B1": "吞吐量", "A2": "果园港", "B2": "3125.6万吨", "XFD2000": "末格备注"}.items():
        sheet[ref] = value
    buffer = io.BytesIO()
    book.save(buffer)
    result = convert(buffer.getvalue(), "稀疏.xlsx")
    rows = {result.text[r.start:r.end]: r.label for r in result.regions if r.kind == "row"}
    # The last cell is on the sheet's row 2000, not the third populated row.
    assert rows == {"港区：果园港；吞吐量：3125.6万吨。": "第2行", "XFD：末格备注。": "第2000行"}


def test_csv_rows_after_a_blank_line_keep_their_line_numbers():
    from rag.convert import convert

    result = convert("船名,载客量\n渝智一号,120人\n\n渝智二号,86人\n".encode("utf-8"), "渡轮.csv")
    rows = [r.label for r in result.regions if r.kind == "row"]
    assert rows == ["第2行", "第4行"]
