"""Converted documents on the page (issue 15): a PDF citation's page and table row, a scan's uncertain OCR lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.convert import ocr
from tests.documents import FONT, damaged_scan_png, table_pdf
from tests.test_browser import app_url, ask, browser, open_citation, page, upload  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser]


def test_a_citation_into_a_pdf_shows_its_page_table_and_row(page, tmp_path):
    pytest.importorskip("reportlab")
    path = tmp_path / "渡轮统计.pdf"
    path.write_bytes(table_pdf())
    assert "✓ 渡轮统计.pdf" in upload(page, path)
    answer = ask(page, "渝智二号渡轮的最高航速是多少？")
    assert "22公里" in answer
    panel = open_citation(page, 1)
    location = page.locator("#sources .doc-location").first.inner_text()
    assert location.startswith("第2页 表1 渡轮技术参数 第4行") and "渡轮统计.pdf" in panel
    assert page.inner_text("#sources mark#focus-mark").startswith("船名：渝智二号；")
    # The upload's .meta.json is part of what was indexed: the page must not call the file edited.
    assert "文档目录有改动" not in page.inner_text("body")
    page.screenshot(path=str(tmp_path / "pdf-citation.png"))


@pytest.mark.skipif(not Path(FONT).exists() or not ocr.available(), reason="needs fonts-noto-cjk and the OCR extra")
def test_low_confidence_ocr_lines_are_underlined_in_the_source_viewer(page, tmp_path):
    path = tmp_path / "渡轮简介.png"
    path.write_bytes(damaged_scan_png())
    assert "✓ 渡轮简介.png" in upload(page, path)
    assert "一百二十人" in ask(page, "渝智一号渡轮可以搭载多少乘客？")
    open_citation(page, 1)
    page.click("#view-article")
    page.locator("#article mark#article-mark").wait_for()
    low = page.locator("#article .ocr-low")
    assert low.count() == 1  # the torn line only; the clean lines read at ~0.98 are not marked
    assert "OCR 识别置信度 0.7" in low.get_attribute("title") and "可能有误" in low.get_attribute("title")
    assert "underline" in low.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert "一百二十人" not in low.inner_text()
    page.screenshot(path=str(tmp_path / "ocr-viewer.png"))
