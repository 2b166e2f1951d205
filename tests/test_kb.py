"""The knowledge base: upload validation and conversion, and add/delete/rebuild with the index swapped in."""

from __future__ import annotations

import functools
import io
import shutil
import threading

import pytest

from rag.answer import Answerer
from rag.gloss import cached_glossary
from rag.kb import MAX_UPLOAD_BYTES, KnowledgeBase, UploadError, prepare_upload, safe_name

FERRY = "嘉陵江智能渡轮试运行\n\n2026年3月18日，重庆嘉陵江首艘智能渡轮“渝智一号”开始试运行。该渡轮可搭载乘客120人，最高航速每小时25公里。\n"


def minimal_pdf(text: str, pages: int = 1) -> bytes:
    """Return a PDF of `pages` pages, each showing `text` (ASCII) in Helvetica, with a correct xref table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    kids = b" ".join(b"%d 0 R" % (6 + i) for i in range(pages - 1))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R %s] /Count %d >>" % (kids, pages),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ] + [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"] * (pages - 1)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "渝智一号渡轮简介"
    document.add_paragraph("嘉陵江首艘智能渡轮“渝智一号”于2026年3月18日开始试运行。")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "载客量"
    table.rows[0].cells[1].text = "120人"
    document.add_paragraph("渡轮最高航速每小时25公里。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- names -------------------------------------------------------------------------------------


def test_a_name_with_bidirectional_or_invisible_characters_shows_as_it_is():
    # Issue 37 item 7: U+202E made "报告\u202Etxt.pdf" display as "报告fdp.txt" and was stored as given.
    assert safe_name("报告\u202Etxt.pdf") == "报告txt.pdf"
    assert safe_name("资\u200b料\u2066.txt") == "资料.txt"
    with pytest.raises(UploadError, match="不支持的文件类型"):
        safe_name("报告\u202Efdp.exe")


@pytest.mark.parametrize(
    "raw, name",
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\报告.TXT", "报告.TXT"),
        ("ｆｅｒｒｙ．ｔｘｔ", "ferry.txt"),  # full-width letters are NFKC-normalized
        ("  渡轮 简介.md ", "渡轮 简介.md"),
    ],
)
def test_safe_name_keeps_only_a_normalized_bare_name(raw, name):
    assert safe_name(raw) == name


@pytest.mark.parametrize(
    "raw, message",
    [
        ("a..b.txt", "不能包含"),
        ("..", "不能为空或以点开头"),
        (".hidden.txt", "不能为空或以点开头"),
        ("", "不能为空"),
        ("bad\x00name.txt", "不允许的字符"),
        ("what?.txt", "不允许的字符"),
        ("virus.exe", "不支持的文件类型"),
        ("noext", "不支持的文件类型"),
        ("长" * 80 + ".txt", "文件名太长"),
    ],
)
def test_safe_name_refuses_unsafe_names(raw, message):
    with pytest.raises(UploadError, match=message):
        safe_name(raw)


# --- validation and conversion -----------------------------------------------------------------


def test_text_upload_is_stored_as_given():
    data = FERRY.encode("gb18030")
    upload = prepare_upload("渡轮.txt", data)
    assert (upload.name, upload.data, upload.converted) == ("渡轮.txt", data, False)


def test_markdown_upload_keeps_its_suffix():
    assert prepare_upload("notes.MD", FERRY.encode()).name == "notes.md"


def test_empty_oversized_and_binary_uploads_are_refused():
    with pytest.raises(UploadError, match="空文件"):
        prepare_upload("a.txt", b"")
    with pytest.raises(UploadError, match="超过了 5 MB"):
        prepare_upload("a.txt", b"a" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(UploadError, match="不是可识别的文本"):
        prepare_upload("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00" * 50)
    with pytest.raises(UploadError, match="没有可检索的文字"):
        prepare_upload("blank.txt", b"   \n\n  ")


def test_html_is_converted_to_text_without_markup_or_scripts():
    page = (
        "<html><head><title>渝智一号渡轮</title><script>window.__pwned=1</script></head><body>"
        "<article><h1>嘉陵江智能渡轮试运行</h1><p>2026年3月18日，重庆嘉陵江首艘智能渡轮“渝智一号”开始试运行。"
        "该渡轮可搭载乘客120人，最高航速每小时25公里。</p><img src=x onerror=\"window.__pwned=1\"></article>"
        "</body></html>"
    )
    upload = prepare_upload("ferry.html", page.encode("utf-8"))
    text = upload.data.decode("utf-8")
    assert upload.name == "ferry.txt" and upload.converted
    assert "可搭载乘客120人" in text
    assert text.startswith("嘉陵江智能渡轮试运行")  # the page heading leads, so the loader takes it as title
    assert "<" not in text and "__pwned" not in text


def test_docx_is_converted_with_title_paragraphs_and_tables_in_order():
    text = prepare_upload("ferry.docx", docx_bytes()).data.decode("utf-8")
    lines = [line for line in text.split("\n") if line]
    assert lines == ["渝智一号渡轮简介", "嘉陵江首艘智能渡轮“渝智一号”于2026年3月18日开始试运行。", "表1", "载客量：120人。",
                     "渡轮最高航速每小时25公里。"]


def test_pdf_text_is_extracted():
    upload = prepare_upload("ferry.pdf", minimal_pdf("The Yuzhi ferry carries 120 passengers."))
    assert upload.name == "ferry.txt"
    assert "The Yuzhi ferry carries 120 passengers." in upload.data.decode("utf-8")


@pytest.mark.parametrize("name, message", [("broken.pdf", "不是有效的 PDF"), ("broken.docx", "不是有效的 .docx")])
def test_broken_documents_are_refused(name, message):
    with pytest.raises(UploadError, match=message):
        prepare_upload(name, b"this is not really a document" * 10)


# --- the knowledge base ------------------------------------------------------------------------


@pytest.fixture()
def kb_any(store_backend, docs_copy, index_copy, embedder) -> KnowledgeBase:
    """The knowledge base on each search backend, for the tests whose changes go through the store."""
    base = KnowledgeBase(docs_copy, index_copy, embedder)
    if store_backend == "qdrant":
        base.rebuild()  # the copied FAISS build moves to Qdrant; its embeddings come from the cache
    assert base.load() == []
    return base


def test_add_indexes_only_the_new_text_and_swaps_the_index(kb_any):
    kb = kb_any
    before = kb.index
    upload, report = kb.add("ferry.txt", FERRY.encode("utf-8"))
    assert upload.name == "ferry.txt" and (kb.docs_dir / "ferry.txt").exists()
    assert kb.index is not before and "ferry" in kb.index.documents and "ferry" not in before.documents
    # Built before the swap, so the first English question after an upload does not wait ~1.4 s for it.
    assert cached_glossary(kb.index.keywords) is not None
    assert 0 < report.embedded < 10 and report.cached > 400  # the seeds' vectors come from the cache
    row = next(r for r in kb.documents() if r.file == "ferry.txt")
    # "2026年3月18日，…开始试运行" is the event's date, not the article's (issue 14, item 2): no date.
    assert (row.title, row.date, row.chunks) == ("嘉陵江智能渡轮试运行", None, 1)
    answer = Answerer(kb.index).run("渝智一号渡轮可以搭载多少乘客？")
    assert "120人" in answer.text and answer.citations[0].file == "ferry.txt"


def test_converted_upload_is_kept_as_uploaded_and_converted_once(kb):
    data = docx_bytes()
    upload, report = kb.add("ferry.docx", data)
    # Issue 36: the original is kept byte for byte, nothing is written beside it, and the build takes the
    # upload's conversion from the cache instead of converting it again.
    assert (upload.name, upload.converted) == ("ferry.docx", True) and (kb.docs_dir / "ferry.docx").read_bytes() == data
    assert not (kb.docs_dir / "ferry.txt").exists() and not (kb.docs_dir / "ferry.meta.json").exists()
    assert report.converted == () and "ferry.docx" in report.files
    doc = kb.index.documents["ferry"]
    assert (doc.file, doc.title) == ("ferry.docx", "渝智一号渡轮简介")
    assert "ferry.docx" in [r.file for r in kb.documents()]


def test_documents_uploaded_as_text_with_a_metadata_file_still_load_and_delete(kb):
    from tests.documents import text_pdf

    old = prepare_upload("航运报告.pdf", text_pdf())  # what uploads stored before issue 36
    (kb.docs_dir / "航运报告.txt").write_bytes(old.data)
    (kb.docs_dir / "航运报告.meta.json").write_bytes(old.meta)
    kb.rebuild()
    doc = kb.index.documents["航运报告"]
    assert doc.file == "航运报告.txt" and doc.page_of(doc.original.index("渝智一号")) == 3
    kb.delete("航运报告.txt")
    assert not (kb.docs_dir / "航运报告.meta.json").exists()


def test_an_upload_with_the_text_of_a_document_in_another_format_is_refused(kb):
    kb.add("ferry.docx", docx_bytes())
    text = kb.index.documents["ferry"].original
    files = sorted(p.name for p in kb.docs_dir.iterdir())
    with pytest.raises(UploadError, match="内容相同"):
        kb.add("ferry-copy.txt", text.encode("utf-8"))
    assert sorted(p.name for p in kb.docs_dir.iterdir()) == files and "ferry" in kb.index.documents


def test_refused_uploads_change_nothing(kb):
    files = sorted(p.name for p in kb.docs_dir.iterdir())
    index = kb.index
    seed = sorted(kb.docs_dir.glob("*.txt"))[0]
    for name, data, message in [
        ("virus.exe", b"MZ", "不支持的文件类型"),
        ("binary.txt", bytes(range(256)) * 20, "不是可识别的文本"),
        (seed.stem + ".md", FERRY.encode(), "已有同名文档"),
        ("copy.txt", seed.read_bytes(), "内容相同"),
    ]:
        with pytest.raises(UploadError, match=message):
            kb.add(name, data)
    assert sorted(p.name for p in kb.docs_dir.iterdir()) == files
    assert kb.index is index


def test_a_failed_build_removes_the_upload_and_keeps_the_index(kb, monkeypatch):
    index = kb.index

    def broken(progress):
        raise RuntimeError("disk full")

    monkeypatch.setattr(kb, "_rebuild", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        kb.add("ferry.txt", FERRY.encode())
    assert not (kb.docs_dir / "ferry.txt").exists()
    assert [p.name for p in kb.docs_dir.iterdir() if p.name.startswith(".")] == []
    assert kb.index is index


def test_delete_removes_the_document_from_folder_and_index(kb_any):
    kb = kb_any
    victim = sorted(kb.docs_dir.glob("*.txt"))[0]
    report = kb.delete(victim.name)
    assert not victim.exists() and report.documents == 4 and report.embedded == 0
    assert victim.stem not in kb.index.documents
    assert victim.name not in [r.file for r in kb.documents()]
    assert [p.name for p in kb.docs_dir.iterdir() if p.name.startswith(".")] == []
    store = kb.index.manifest["store"]
    if store["backend"] == "qdrant":  # the deleted document's points went with the old build's collection
        import gc

        from rag.index.stores.qdrant import Location, connect

        gc.collect()
        client = connect(Location(path=":memory:"))
        names = {c.name for c in client.get_collections().collections if c.name.startswith(store["alias"] + "-")}
        assert names == {store["collection"]}
        assert client.count(store["collection"]).count == len(kb.index.units)


def test_delete_refuses_unknown_names_and_restores_on_failure(kb, monkeypatch):
    with pytest.raises(UploadError, match="没有文件"):
        kb.delete("../../etc/passwd")
    victim = sorted(kb.docs_dir.glob("*.txt"))[0]
    content = victim.read_bytes()

    def broken(progress):
        raise RuntimeError("disk full")

    monkeypatch.setattr(kb, "_rebuild", broken)
    with pytest.raises(RuntimeError):
        kb.delete(victim.name)
    assert victim.read_bytes() == content


def test_the_last_document_cannot_be_deleted(tmp_path, seeds_dir, index_copy, embedder):
    docs = tmp_path / "one"
    docs.mkdir()
    first = sorted(seeds_dir.glob("*.txt"))[0]
    shutil.copy(first, docs)
    kb = KnowledgeBase(docs, index_copy, embedder)
    kb.rebuild()
    with pytest.raises(UploadError, match="最后一篇文档"):
        kb.delete(first.name)
    assert (docs / first.name).exists()


def test_load_reports_a_stale_index(kb):
    (kb.docs_dir / "ferry.txt").write_text(FERRY, encoding="utf-8")
    reasons = kb.load()
    assert reasons and "ferry.txt" in reasons[0]


def test_questions_keep_working_while_the_index_is_rebuilt(kb_any):
    kb = kb_any
    errors: list[BaseException] = []
    answers: list[str] = []
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            try:
                answers.append(Answerer(kb.index).run("重庆人工智能产业基金规模有多大").text)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return

    thread = threading.Thread(target=ask)
    thread.start()
    try:
        kb.add("ferry.txt", FERRY.encode())
        kb.delete("ferry.txt")
    finally:
        done.set()
        thread.join()
    assert errors == []
    assert answers and all("200亿元" in a for a in answers)


# --- conversion limits (checked before anything is parsed or written) -------------------------------


@functools.lru_cache(maxsize=1)
def _base_docx() -> bytes:
    return docx_bytes()


def _docx_with_body(paragraphs: list[str], extra: dict[str, bytes] | None = None) -> bytes:
    """Return docx_bytes() with its document.xml replaced by `paragraphs` (and `extra` entries added)."""
    import zipfile

    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    xml = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxml'
           f'formats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>').encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_base_docx())) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, xml if item.filename == "word/document.xml" else source.read(item))
        for name, data in (extra or {}).items():
            target.writestr(name, data)
    return out.getvalue()


@pytest.fixture()
def no_docx_parsing(monkeypatch):
    """Fail the test if python-docx is asked to parse: refusals must come from the zip directory."""
    import docx

    _base_docx()  # built before python-docx is disabled

    def parse(*args, **kwargs):
        raise AssertionError("python-docx was asked to parse a file that should have been refused")

    monkeypatch.setattr(docx, "Document", parse)


def test_docx_expanding_past_the_limit_is_refused_from_the_zip_directory(no_docx_parsing):
    import random

    from rag.convert.limits import MAX_ZIP_UNCOMPRESSED

    # Random "a"/"b" bytes pack about 8:1: a file under the 5 MB upload limit, a normal ratio, too much unpacked.
    coin = bytes(b"ab"[i & 1] for i in range(256))
    noise = random.Random(0).randbytes(MAX_ZIP_UNCOMPRESSED).translate(coin)
    huge = _docx_with_body(["正文。"], {"word/media/noise.bin": noise})
    assert len(huge) < MAX_UPLOAD_BYTES
    with pytest.raises(UploadError, match=r"解压后有 20\.\d MB，超过了 20 MB 的上限"):
        prepare_upload("huge.docx", huge)


def test_docx_with_a_zip_bomb_ratio_is_refused(no_docx_parsing):
    bomb = _docx_with_body(["正文。"], {"word/media/zeros.bin": b"\0" * (8 * 1024 * 1024)})
    assert len(bomb) < 100_000
    with pytest.raises(UploadError, match=r"解压后是原文件的 \d+ 倍（上限 100 倍）"):
        prepare_upload("bomb.docx", bomb)


def test_docx_with_too_many_paragraphs_is_refused(no_docx_parsing):
    import random

    from rag.convert.limits import MAX_DOCX_PARAGRAPHS

    rng = random.Random(1)
    words = [chr(rng.randint(0x4E00, 0x9FA5)) * 1 + chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(MAX_DOCX_PARAGRAPHS + 1)]
    with pytest.raises(UploadError, match=f"{MAX_DOCX_PARAGRAPHS + 1} 个段落，超过了 {MAX_DOCX_PARAGRAPHS} 个的上限"):
        prepare_upload("many.docx", _docx_with_body(words))


def test_pdf_with_too_many_pages_is_refused():
    from rag.convert.limits import MAX_PDF_PAGES

    many = minimal_pdf("page", pages=MAX_PDF_PAGES + 1)
    with pytest.raises(UploadError, match=f"{MAX_PDF_PAGES + 1} 页，超过了 {MAX_PDF_PAGES} 页的上限"):
        prepare_upload("long.pdf", many)


def test_converted_text_over_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr("rag.convert.limits.MAX_CONVERTED_BYTES", 2000)
    monkeypatch.setattr("rag.convert.limits._MB", 1000)  # report the tiny limit in whole units
    page = "<html><body><article><p>" + "重庆嘉陵江首艘智能渡轮开始试运行。" * 60 + "</p></article></body></html>"
    # Counted while it is produced: the conversion stops past the limit, so the amount is a lower bound.
    with pytest.raises(UploadError, match="转换出的文字超过 .* MB，超过了 2 MB 的上限"):
        prepare_upload("long.html", page.encode("utf-8"))
    with pytest.raises(UploadError, match="转换出的文字超过 .* MB，超过了 2 MB 的上限"):
        prepare_upload("long.pdf", minimal_pdf("x" * 1500, pages=2))


def test_a_refused_conversion_writes_nothing(tmp_path, no_docx_parsing):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(FERRY, encoding="utf-8")
    base = KnowledgeBase(docs, tmp_path / "index")
    bomb = _docx_with_body(["正文。"], {"word/media/zeros.bin": b"\0" * (8 * 1024 * 1024)})
    with pytest.raises(UploadError, match="压缩比异常"):
        base.add("bomb.docx", bomb)
    assert sorted(p.name for p in docs.iterdir()) == ["a.txt"]


# --- duplicates and HTML ---------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [
    lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    lambda t: t.replace("\n", "\r\n").encode("utf-8"),
    lambda t: t.encode("gb18030"),
])
def test_the_same_text_in_another_encoding_is_a_duplicate(tmp_path, encode):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.txt").write_text(FERRY, encoding="utf-8")
    base = KnowledgeBase(docs, tmp_path / "index")
    with pytest.raises(UploadError, match="与已有文档 ferry.txt 内容相同"):
        base.add("ferry-copy.txt", encode(FERRY))
    assert sorted(p.name for p in docs.iterdir()) == ["ferry.txt"]


def test_html_inline_tags_do_not_split_sentences_and_scripts_stay_out_of_the_title():
    page = (
        "<html><head><title>页面</title></head><body><article><h1>重庆机器人<script>alert('pwned')</script>产业</h1>"
        "<p>2026年全市工业机器人产量预计达到<b>86吨</b>。这一数字由<a href='#'>市经信委</a>发布，"
        "比上年增长<span class='n'>12%</span>，是重庆智能制造发展的重要标志。</p></article></body></html>"
    )
    text = prepare_upload("robots.html", page.encode("utf-8")).data.decode("utf-8")
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines[0] == "重庆机器人产业" and "alert" not in text and "pwned" not in text
    assert "预计达到86吨。这一数字由市经信委发布，比上年增长12%，" in text


# --- PDFs: pages, running headers, metadata (issue 15) --------------------------------------------


def test_pdf_fact_on_page_3_is_cited_with_its_page_and_running_header_is_dropped(kb):
    from tests.documents import RUNNING_HEADER, text_pdf

    upload, _ = kb.add("航运报告.pdf", text_pdf())
    doc = kb.index.documents["航运报告"]
    assert doc.title == "嘉陵江航运年度报告（2025）"  # the PDF's own /Title
    assert doc.original.count(RUNNING_HEADER) == 4 and RUNNING_HEADER not in doc.text  # kept in the file, not indexed
    assert "第 3 页" in doc.original and "第 3 页" not in doc.text
    answer = Answerer(kb.index).run("渝智一号渡轮可以搭载多少乘客？")
    citation = answer.citations[0]
    assert "一百二十人" in answer.text and citation.file == "航运报告.pdf"
    assert (citation.page, citation.location) == (3, "第3页")
    assert doc.original[citation.orig_start:citation.orig_end] == citation.sentence  # exact span of the extracted text
    assert answer.to_dict()["citations"][0]["page"] == 3  # what `rag ask --json` and /ask return
    row = next(r for r in kb.documents() if r.file == "航运报告.pdf")
    assert "PDF，4页" in row.note


def test_deleting_a_converted_document_removes_the_original(kb):
    from tests.documents import text_pdf

    kb.add("航运报告.pdf", text_pdf())
    kb.delete("航运报告.pdf")
    assert not (kb.docs_dir / "航运报告.pdf").exists() and "航运报告" not in kb.index.documents


def test_html_navigation_text_is_dropped():
    # Issue 14, item 10: a menu bar ("首页 | 关于") is page furniture, not content, in both extraction paths.
    article = ("<html><head><title>渡轮</title><meta property='article:published_time' content='2026-03-19T08:00'>"
               "</head><body><nav><a href='/'>首页</a> | <a href='/about'>关于</a></nav>"
               "<div class='breadcrumb'>首页 &gt; 新闻</div><article><h1>嘉陵江智能渡轮试运行</h1>"
               "<p>2026年3月18日，重庆嘉陵江首艘智能渡轮“渝智一号”开始试运行。该渡轮可搭载乘客120人，最高航速每小时25公里。</p>"
               "</article><footer>版权所有 关于我们</footer></body></html>")
    upload = prepare_upload("ferry.html", article.encode("utf-8"))
    text = upload.data.decode("utf-8")
    assert "首页" not in text and "关于" not in text and "版权所有" not in text and "可搭载乘客120人" in text
    assert '"date": "2026-03-19"' in upload.meta.decode("utf-8")  # the page's own publication date
    small = "<p>首页 | 关于 | 联系</p><p>渝智一号渡轮可搭载乘客120人。</p>"  # too small for boilerplate removal
    text = prepare_upload("small.html", small.encode("utf-8")).data.decode("utf-8")
    assert "首页" not in text and "渝智一号渡轮可搭载乘客120人。" in text
