"""The conversion road: hostile files are bounded while they are converted, by what they produce."""

from __future__ import annotations

import io
import json
import re
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from rag.convert import ConversionError, convert
from rag.convert.limits import MAX_CONVERTED_BYTES

ROOT = Path(__file__).resolve().parents[1]
MEMORY = 1 << 30  # the bound: under 1 GB for any input the upload limit admits
# Of CPU, not wall time: this machine may be busy, and a starved child must not fail the test.
SECONDS = 60  # generous; every file here takes under a few seconds once bounded
_CHILD = """
import json, sys
from rag.convert import ConversionError, convert, limits
limits.CONVERT_SECONDS = 15 * 60  # quickness is bounded by CPU here (RLIMIT_CPU): a busy machine must not time out
path = sys.argv[1]
try:
    result = convert(open(path, "rb").read(), path.rsplit("/", 1)[-1])
except ConversionError as exc:
    print(json.dumps({"error": str(exc), "kind": exc.kind}))
else:
    print(json.dumps({"text": result.text[:20000], "size": len(result.text.encode("utf-8"))}))
"""


def convert_bounded(tmp_path: Path, name: str, data: bytes) -> dict:
    """Return what converting `data` gives in a child limited to 1 GB of memory and SECONDS of CPU."""
    path = tmp_path / name
    path.write_bytes(data)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
        resource.setrlimit(resource.RLIMIT_CPU, (SECONDS, SECONDS + 1))

    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                          timeout=15 * SECONDS, preexec_fn=limit, cwd=ROOT)
    # Past 1 GB the child dies of MemoryError, past SECONDS of CPU by SIGXCPU: both end here.
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    return json.loads(done.stdout)


def _xlsx(cells: dict[str, str]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "统计"
    for ref, value in cells.items():
        sheet[ref] = value
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _rewrite(data: bytes, member: str, change) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            body = source.read(item)
            target.writestr(item, change(body.decode("utf-8")).encode("utf-8") if item.filename == member else body)
    return out.getvalue()


def test_sparse_xlsx_is_read_by_its_populated_cells(tmp_path):
    data = _xlsx({"A1": "港区", "B1": "吞吐量", "A2": "果园港", "B2": "3125.6万吨", "XFD2000": "末格备注"})
    assert len(data) < 10_000
    result = convert_bounded(tmp_path, "sparse.xlsx", data)
    assert "港区：果园港；吞吐量：3125.6万吨。" in result["text"]
    assert "末格备注" in result["text"]
    assert result["size"] < 10_000


def test_xlsx_merged_range_over_the_whole_sheet_is_clamped_to_its_cells(tmp_path):
    data = _xlsx({"A1": "港区", "B1": "吞吐量", "A2": "果园港", "B2": "3125.6万吨"})
    # openpyxl would make the range's 819 million cells to write it, so it goes into the XML directly.
    data = _rewrite(data, "xl/worksheets/sheet1.xml",
                    lambda xml: xml.replace("</sheetData>", '</sheetData><mergeCells count="1"><mergeCell ref="A1:XFD50000"/></mergeCells>'))
    assert len(data) < 10_000
    result = convert_bounded(tmp_path, "merged.xlsx", data)
    assert "error" not in result, result
    assert result["size"] < 10_000 and "港区" in result["text"]


def test_html_table_spans_are_clamped_to_the_table(tmp_path):
    row = "<tr>" + '<td colspan="100" rowspan="100">格</td>' * 100 + "</tr>"
    page = f"<html><body><p>港口统计表。</p><table>{row * 30}</table></body></html>".encode()
    assert len(page) > 100_000
    result = convert_bounded(tmp_path, "spans.html", page)
    assert result.get("size", 0) <= MAX_CONVERTED_BYTES or "上限" in result.get("error", "")


def test_csv_repeating_long_header_names_stops_at_the_text_limit(tmp_path):
    header = ",".join(f"列{k:03d}" + "名" * 1000 for k in range(500))
    row = ",".join("值" for _ in range(500))
    data = (header + "\n" + "\n".join([row] * 1500)).encode("utf-8")
    assert len(data) < 5 * 1024 * 1024
    result = convert_bounded(tmp_path, "wide.csv", data)
    assert re.search(r"转换出的文字超过 [\d.]+ MB，超过了 5 MB 的上限", result["error"]), result
    assert result["kind"] == "too large"


def _docx_table(span: int) -> bytes:
    from tests.test_kb import _docx_with_body

    def cell(text: str, grid_span: int = 1) -> str:
        props = f'<w:tcPr><w:gridSpan w:val="{grid_span}"/></w:tcPr>' if grid_span > 1 else ""
        return f"<w:tc>{props}<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:tc>"

    table = ('<w:tbl><w:tblGrid><w:gridCol w:w="2000"/><w:gridCol w:w="2000"/></w:tblGrid>'
             f"<w:tr>{cell('船名')}{cell('载客量', span)}</w:tr><w:tr>{cell('渝智一号')}{cell('120人')}</w:tr></w:tbl>")
    data = _docx_with_body(["嘉陵江渡轮一览"])
    return _rewrite(data, "word/document.xml", lambda xml: xml.replace("</w:body>", table + "</w:body>"))


@pytest.mark.parametrize("span", [1_000_000, 10_000_000])
def test_docx_grid_span_is_clamped_to_the_table_width(tmp_path, span):
    data = _docx_table(span)
    assert len(data) < 50_000  # the python-docx template, thumbnail included
    result = convert_bounded(tmp_path, "span.docx", data)
    assert "船名：渝智一号；载客量：120人。" in result["text"], result


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_huge_image_is_refused_by_its_pixel_count():
    with pytest.raises(ConversionError, match="900 百万像素，超过了 40 百万像素的上限") as caught:
        convert(_png_header(30000, 30000), "huge.png")
    assert caught.value.kind == "too large"


def test_unsupported_type_is_named():
    with pytest.raises(ConversionError, match="不支持的文件类型“.pptx”") as caught:
        convert(b"PK\x03\x04", "slides.pptx")
    assert caught.value.kind == "unsupported type"


# --- a folder of mixed files: one conversion road, a cache, every file accounted for -----------------


@pytest.fixture()
def mixed_folder(tmp_path) -> Path:
    from tests.documents import docx_with_table, text_pdf, xlsx_bytes

    docs = tmp_path / "docs"
    (docs / "年报").mkdir(parents=True)
    (docs / "渡轮.txt").write_text("嘉陵江智能渡轮\n\n渝智一号可搭载乘客120人。\n", encoding="utf-8")
    (docs / "年报" / "航运.pdf").write_bytes(text_pdf())
    (docs / "渡轮一览.docx").write_bytes(docx_with_table())
    (docs / "港口.xlsx").write_bytes(xlsx_bytes())
    (docs / "新闻.html").write_text("<html><head><title>码头通告</title></head><body><article><p>朝天门码头"
                                    "周末客流达到5100人次，比工作日多六成。</p></article></body></html>", encoding="utf-8")
    (docs / "汇报.pptx").write_bytes(b"PK\x03\x04 not read")
    (docs / "损坏.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    return docs


def test_a_folder_is_indexed_as_left_and_every_file_is_accounted_for(mixed_folder, tmp_path):
    from rag.convert.cache import ConversionCache
    from rag.load import load_folder

    cache = ConversionCache(tmp_path / "index" / "converted")
    before = {p: p.read_bytes() for p in mixed_folder.rglob("*") if p.is_file()}
    loaded = load_folder(mixed_folder, cache)
    docs = {d.file: d for d in loaded.documents}
    assert sorted(docs) == ["年报/航运.pdf", "新闻.html", "渡轮.txt", "渡轮一览.docx", "港口.xlsx"]
    skipped = dict(loaded.skipped)
    assert skipped["汇报.pptx"] == "unsupported type: .pptx"
    assert skipped["损坏.pdf"].startswith("damaged: ") and "不是有效的 PDF" in skipped["损坏.pdf"]
    assert sorted(loaded.converted) == ["年报/航运.pdf", "损坏.pdf", "新闻.html", "渡轮一览.docx", "港口.xlsx"]
    # Originals are never rewritten, and nothing is added beside them.
    assert {p: p.read_bytes() for p in mixed_folder.rglob("*") if p.is_file()} == before
    pdf = docs["年报/航运.pdf"]
    assert any(r.kind == "page" and r.label == "第3页" for r in pdf.regions) and pdf.source == "年报/航运.pdf"
    assert any(r.kind == "row" for r in docs["港口.xlsx"].regions)

    again = load_folder(mixed_folder, cache)
    assert again.converted == ()  # a second build converts nothing, not even the damaged file again
    assert [d.text for d in again.documents] == [d.text for d in loaded.documents]

    (mixed_folder / "新闻.html").write_text("<html><body><article><p>磁器口码头周末客流达到4300人次。</p>"
                                          "</article></body></html>", encoding="utf-8")
    edited = load_folder(mixed_folder, cache)
    assert edited.converted == ("新闻.html",)  # only the edited file is converted again
    assert "4300人次" in {d.file: d for d in edited.documents}["新闻.html"].text
    assert len(list(cache.folder.glob("*.json"))) == 5  # the old page's conversion was dropped (4 + the refusal)


def test_hostile_and_oversized_files_in_a_folder_are_skipped_with_their_reason(tmp_path):
    from rag.load import load_folder
    from tests.test_kb import minimal_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("嘉陵江智能渡轮试运行，可搭载乘客120人。", encoding="utf-8")
    with open(docs / "big.txt", "wb") as f:  # 30 MB of text once took 2.5 GB and minutes to index
        f.truncate(30 * 1024 * 1024)
    (docs / "huge.png").write_bytes(_png_header(30000, 30000))
    (docs / "long.pdf").write_bytes(minimal_pdf("page", pages=2000))
    skipped = dict(load_folder(docs).skipped)
    assert skipped["big.txt"] == "too large: 30.0 MB, over the 5 MB limit"
    assert skipped["huge.png"].startswith("too large: ") and "百万像素的上限" in skipped["huge.png"]
    assert skipped["long.pdf"].startswith("too large: ") and "2000 页" in skipped["long.pdf"]


def test_rag_index_prints_a_line_per_kind():
    from rag.cli import file_account
    from rag.index.build import BuildReport

    report = BuildReport(3, 9, 20, 20, 0, 1.0, (("汇报.pptx", "unsupported type: .pptx"),
                                                 ("损坏.pdf", "damaged: 无法读取")), Path("x"), "flat",
                         converted=("a.pdf",), files=("a.pdf", "b.txt", "c.docx"))
    assert file_account(report) == ["indexed: 3 files", "converted: 1 (a.pdf)", "unchanged: 2 (no conversion needed)",
                                    "skipped, unsupported type: 1 (汇报.pptx (.pptx))",
                                    "skipped, damaged: 1 (损坏.pdf (无法读取))"]


def test_bench_ingest_measures_a_rebuild_after_one_edit(tmp_path):
    from rag.bench.ingest import folder_conversion

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("嘉陵江智能渡轮试运行。", encoding="utf-8")
    (docs / "港口.csv").write_text("港区,吞吐量\n果园港,3125.6万吨\n", encoding="utf-8")
    (docs / "码头.csv").write_text("码头,周末\n朝天门,5100人次\n", encoding="utf-8")
    result = folder_conversion(docs, tmp_path / "converted", docs / "码头.csv")
    assert (result["files"], result["converted_first"], result["converted_rebuild"]) == (3, 2, 1)
    assert result["first_s"] >= 0 and result["rebuild_share"] >= 0


def test_the_knowledge_base_names_skipped_files_in_chinese():
    from rag.kb import skip_reason

    assert skip_reason("unsupported type: .pptx") == "不支持的文件类型（.pptx）"
    assert skip_reason("same text as a.txt") == "same text as a.txt"


def _encrypted_pdf() -> bytes:
    from pypdf import PdfWriter

    from tests.test_kb import minimal_pdf

    writer = PdfWriter(clone_from=io.BytesIO(minimal_pdf("secret")))
    writer.encrypt("password")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _ole(*streams: str) -> bytes:
    """Return the head of an OLE container naming `streams` (as a password-protected Office file is)."""
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504 + b"".join(s.encode("utf-16-le") + b"\0\0" for s in streams)


def test_every_reason_a_folder_file_is_skipped_for_is_reached(tmp_path, monkeypatch):
    from rag.convert import limits
    from rag.load import load_folder

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "渡轮.txt").write_text("嘉陵江智能渡轮试运行，可搭载乘客120人。", encoding="utf-8")
    (docs / "汇报.pptx").write_bytes(b"PK\x03\x04 not read")
    with open(docs / "big.txt", "wb") as f:
        f.truncate(6 * 1024 * 1024)
    (docs / "损坏.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    (docs / "加密.pdf").write_bytes(_encrypted_pdf())
    (docs / "加密.docx").write_bytes(_ole("EncryptionInfo", "EncryptedPackage"))
    (docs / "旧版.xlsx").write_bytes(_ole("Workbook"))  # an .xls renamed: damaged, with what to do
    (docs / "空白.txt").write_text("  \n\n ", encoding="utf-8")
    (docs / "渡轮（副本）.txt").write_text("嘉陵江智能渡轮试运行，可搭载乘客120人。", encoding="utf-8")
    skipped = dict(load_folder(docs).skipped)
    kinds = {name: reason.partition(": ")[0] for name, reason in skipped.items()}
    assert kinds == {"汇报.pptx": "unsupported type", "big.txt": "too large", "损坏.pdf": "damaged", "加密.pdf": "encrypted",
                     "加密.docx": "encrypted", "旧版.xlsx": "damaged", "空白.txt": "empty", "渡轮（副本）.txt": "duplicate"}
    assert "另存为 .xlsx" in skipped["旧版.xlsx"] and "same text as 渡轮.txt" in skipped["渡轮（副本）.txt"]

    monkeypatch.setattr(limits, "CONVERT_SECONDS", 0.0)  # any conversion now runs past its time budget
    (docs / "新闻.html").write_text("<html><body><p>朝天门码头周末客流达到5100人次。</p></body></html>", encoding="utf-8")
    skipped = dict(load_folder(docs).skipped)
    assert skipped["新闻.html"].startswith("timed out: ") and "转换超时" in skipped["新闻.html"]


def test_every_skip_reason_has_its_chinese_name_for_the_page():
    from rag.convert.limits import REASONS
    from rag.kb import skip_reason

    for kind in REASONS:
        assert skip_reason(f"{kind}: x") != f"{kind}: x", kind
    assert skip_reason("too large: 30.0 MB, over the 5 MB limit") == "超出上限（30.0 MB，超过了 5 MB 的上限）"
    assert skip_reason("empty: no text") == "没有文字"


# --- issue 36 end to end: `rag index` over a folder of every kind, then `rag ask` ------------------------

_CABLEWAYS = [("索道", "全长", "开通年份"), ("长江索道", "1166米", "1987年"), ("嘉陵江索道", "740米", "1982年")]
# One fact per file, asked of `rag ask`: (question, words of the answer, file, where its citation must point).
_FACTS = [
    ("嘉陵三号渡轮的最高航速是多少？", "18公里每小时", "航运统计.pdf", "第2页"),
    ("缙云山景区每天开放多长时间？", "十二个小时", "景区扫描件.pdf", "第2页"),
    ("长江索道全长多少米？", "1166米", "索道.docx", "表1 第2行"),
    ("寸滩港2025年的货物吞吐量是多少万吨？", "1106.9", "港口.xlsx", "第4行"),
    ("洪崖洞夜游船每晚开行几个班次？", "六个班次", "夜游.html", None),
    ("南滨路观光巴士的票价是多少？", "十五元", "巴士.png", None),
]


def _cableway_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "重庆索道一览"
    document.add_paragraph("下表列出重庆主城的过江索道。")
    table = document.add_table(rows=len(_CABLEWAYS), cols=3)
    for r, row in enumerate(_CABLEWAYS):
        for c, value in enumerate(row):
            table.rows[r].cells[c].text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.mark.slow  # OCR of three pages and one index build: ~1 min on two idle cores
def test_rag_index_reads_every_kind_in_a_folder_and_rag_ask_cites_page_or_row(tmp_path, monkeypatch, capsys, embedder):
    from tests.documents import FONT, png, scanned_pdf, table_pdf, xlsx_bytes

    from rag.cli import main
    from rag.convert import ocr

    if not Path(FONT).exists() or not ocr.available():
        pytest.skip("needs fonts-noto-cjk to draw the scans and the OCR extra to read them")
    import rag.embed
    import rag.index.live

    # One model load for the whole test: the session's embedder stands in for every command's.
    monkeypatch.setattr(rag.embed, "make_embedder", lambda *args, **kwargs: embedder)
    monkeypatch.setattr(rag.index.live, "make_embedder", lambda *args, **kwargs: embedder)
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    (docs / "航运统计.pdf").write_bytes(table_pdf())  # a text layer; ruled table on page 2
    (docs / "景区扫描件.pdf").write_bytes(scanned_pdf([["缙云山景区资料汇编", "目录与说明。"],
                                                  ["缙云山景区简介", "缙云山景区每天开放十二个小时。"]]))
    (docs / "索道.docx").write_bytes(_cableway_docx())
    (docs / "港口.xlsx").write_bytes(xlsx_bytes())
    (docs / "夜游.html").write_text("<html><head><title>夜游两江</title></head><body><article><h1>夜游两江</h1>"
                                   "<p>洪崖洞夜游船每晚开行六个班次，航线经过朝天门。</p></article></body></html>", encoding="utf-8")
    (docs / "巴士.png").write_bytes(png(["南滨路观光巴士简介", "观光巴士的票价为每人十五元。"]))
    (docs / "汇报.pptx").write_bytes(b"PK\x03\x04 not a presentation")
    (docs / "损坏.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")

    def index_folder() -> list[str]:
        capsys.readouterr()
        assert main(["index", "--docs", str(docs), "--index", str(index)]) == 0
        return capsys.readouterr().err.splitlines()

    lines = index_folder()
    assert "indexed: 6 files" in lines
    assert "skipped, unsupported type: 1 (汇报.pptx (.pptx))" in lines
    assert any(line.startswith("skipped, damaged: 1 (损坏.pdf (") and "不是有效的 PDF" in line for line in lines)
    assert "  景区扫描件.pdf: OCR page 2 of 2" in lines  # progress: page j of m

    for question, words, file, where in _FACTS:
        assert main(["ask", question, "--docs", str(docs), "--index", str(index), "--answer", "extractive",
                     "--json"]) == 0
        answer = json.loads(capsys.readouterr().out)
        citation = answer["citations"][0]
        assert words in answer["text"].replace(" ", ""), (question, answer["text"])
        assert citation["file"] == file, (question, citation)
        if where is not None:
            assert where in citation["location"], (question, citation)
        if file.endswith(".pdf"):
            assert citation["page"] == 2, (question, citation)

    lines = index_folder()  # nothing changed: nothing is converted again, not even the damaged file
    assert "indexed: 6 files" in lines and "unchanged: 6 (no conversion needed)" in lines
    assert not any(line.startswith("converted") for line in lines)

    (docs / "夜游.html").write_text("<html><body><article><p>洪崖洞夜游船每晚开行八个班次。</p></article></body></html>",
                                   encoding="utf-8")
    lines = index_folder()
    assert "converted: 1 (夜游.html)" in lines and "unchanged: 5 (no conversion needed)" in lines
