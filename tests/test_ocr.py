"""OCR of image-only PDF pages and .png/.jpg uploads (rapidocr-onnxruntime, in the default install)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.convert import pdf as pdfmod
from rag.convert import ocr
from rag.answer import Answerer
from rag.kb import KnowledgeBase, UploadError, prepare_upload
from rag.text import squash
from tests.documents import FONT, SCAN_LINES, png, scanned_pdf

pytestmark = [
    pytest.mark.skipif(not Path(FONT).exists(), reason="fonts-noto-cjk is needed to draw the test scans"),
]


def test_scanned_pdf_is_read_by_ocr_page_by_page_with_confidences():
    seen = []
    upload = prepare_upload("扫描件.pdf", scanned_pdf([SCAN_LINES, ["第二页只有一句话：渡轮由本地船厂建造。"]]),
                            progress=lambda stage, done, total: seen.append((stage, done, total)))
    text = squash(upload.data.decode("utf-8"))
    assert "渡轮可搭载乘客一百二十人" in text and "渡轮由本地船厂建造" in text
    meta = upload.meta.decode("utf-8")
    assert '"第2页"' in meta and '"ocr"' in meta and "第1、2页经OCR识别" in meta
    assert seen[-1] == ("OCR", 2, 2) and ("OCR 第2页", 1, 2) in seen  # progress per page


def test_png_upload_is_read_by_ocr():
    upload = prepare_upload("简介.png", png())
    assert upload.name == "简介.txt"
    assert "最高航速每小时二十五公里" in squash(upload.data.decode("utf-8"))


def test_too_many_pages_to_ocr_is_refused_before_reading_any(monkeypatch):
    monkeypatch.setattr(pdfmod, "MAX_OCR_PAGES", 1)
    monkeypatch.setattr(ocr, "read_image", lambda image: pytest.fail("OCR ran past the page limit"))
    with pytest.raises(UploadError, match="2 页需要 OCR 识别.*超过了 1 页的上限"):
        prepare_upload("扫描件.pdf", scanned_pdf([SCAN_LINES, SCAN_LINES]))


def test_ocr_comes_with_the_default_install():
    from importlib.metadata import requires

    core = [r for r in requires("wenyu-rag") if "extra ==" not in r]
    assert any(r.startswith("rapidocr-onnxruntime") for r in core)
    assert ocr.available()


def test_missing_ocr_extra_gives_a_chinese_message_saying_what_to_install(monkeypatch):
    def missing():
        raise ocr.OCRUnavailable(f"识别扫描件和图片需要 OCR 组件，当前未安装：{ocr.OCR_INSTALL}")

    monkeypatch.setattr(ocr, "_engine", missing)
    with pytest.raises(UploadError, match="含扫描页.*pip install rapidocr-onnxruntime"):
        prepare_upload("扫描件.pdf", scanned_pdf())
    with pytest.raises(UploadError, match="是图片.*pip install"):
        prepare_upload("简介.png", png())


def test_scan_is_indexed_and_cited_with_its_page(docs_copy, index_copy, embedder):
    base = KnowledgeBase(docs_copy, index_copy, embedder)
    base.load()
    base.add("扫描件.pdf", scanned_pdf([["嘉陵江渡轮资料汇编", "目录与说明。"], SCAN_LINES]))
    answer = Answerer(base.index).run("渝智一号渡轮可以搭载多少乘客？")
    assert "一百二十人" in answer.text
    assert answer.citations[0].file == "扫描件.pdf" and answer.citations[0].location == "第2页"
    doc = base.index.documents["扫描件"]
    assert all(r.confidence is not None for r in doc.regions if r.kind == "ocr")


def test_low_confidence_ocr_text_is_marked_in_the_source_viewer():
    from rag.app.render import article_view
    from rag.app.session import Focus
    from rag.types import Document, Region

    original = "清楚的一行。\n模糊的一行。"
    doc = Document("d", "d.txt", "d", None, "0" * 64, "utf-8", original, original, tuple(range(len(original))),
                   regions=(Region("ocr", 0, 6, "", 0.98), Region("ocr", 7, 13, "", 0.41)))
    html = article_view(Focus(doc, 0, 6, None))
    assert html.count('class="ocr-low"') == 1 and "0.41" in html
    assert '<span class="ocr-low" title="OCR 识别置信度 0.41，可能有误">模糊的一行。</span>' in html
