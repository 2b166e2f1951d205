"""The knowledge base behind the chat page: list, add, delete and re-index documents.

One `KnowledgeBase` serves every session of a process. It holds the loaded index; a change (upload,
delete, rebuild) builds a new index beside the live one and then swaps the reference, so questions
asked meanwhile finish on the old index. Uploads are validated and converted to text *before*
anything is written: a refused file changes nothing. PDF, Word and HTML files are stored as `.txt`
(the loader reads `.txt` and `.md`), so the documents folder stays plain text.

Messages of `UploadError` are shown on the (Chinese) page, so they are written in Chinese.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import sys
import threading
import unicodedata
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.clean import clean
from rag.converted import Converted, TextBuilder
from rag.tables import add_table, csv_table, merged_header_rows, table_from_grid, xlsx_tables
from rag.ocr import LOW_CONFIDENCE
from rag.types import Document, Region
from rag.embed import DEFAULT_MODEL, Embedder, make_embedder
from rag.gloss import glossary_for
from rag.index import BuildReport, Index, IndexProblem, build_index, current_build, load_index, staleness
from rag.load import TEXT_SUFFIXES, DecodeError, decode, meta_path, text_fingerprint

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# What a conversion may produce, checked before anything is written. A 2.6 MB .docx whose XML
# expanded to 36 MB once became a 34.5 MB .txt (~70 s, 2.6 GB of memory). Measured here with
# python-docx: 8.4 MB of document XML (20,000 paragraphs) converts in ~4.6 s using ~100 MB, so
# 20 MB unpacked bounds a conversion to ~10-15 s; legitimate .docx files unpack to 3-10x their size.
MAX_CONVERTED_BYTES = MAX_UPLOAD_BYTES  # the stored text: no more than a text upload may hold
MAX_PDF_PAGES = 500  # pypdf reads 4-50 ms per page
MAX_DOCX_PARAGRAPHS = 30_000
MAX_ZIP_UNCOMPRESSED = 20 * 1024 * 1024
MAX_ZIP_RATIO = 100  # unpacked size over file size; zip bombs reach ~1000
_MB = 1024 * 1024
CONVERTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm", ".xlsx", ".csv", ".png", ".jpg", ".jpeg")
MAX_OCR_PAGES = 30  # ~4 s a page on two cores: two minutes at most
MAX_IMAGE_PIXELS = 40_000_000
UPLOAD_SUFFIXES = TEXT_SUFFIXES + CONVERTED_SUFFIXES
MAX_NAME_BYTES = 200
_FORBIDDEN_NAME_CHARS = set('<>:"|?*\\/')

Progress = Callable[[str, int, int], None]


class UploadError(ValueError):
    """An uploaded file was refused; the message says why and what to do."""


@dataclass(frozen=True)
class Upload:
    """A validated upload, converted if needed: the bytes to store under `name`."""

    source: str
    name: str
    data: bytes
    converted: bool
    meta: bytes | None = None  # the .meta.json stored beside a converted text (pages, tables, metadata)


@dataclass(frozen=True)
class DocumentRow:
    """One line of the document list."""

    title: str
    file: str
    date: str | None
    chunks: int
    added: str
    note: str = ""


# --- validation and conversion -----------------------------------------------------------------


def safe_name(raw: str) -> str:
    """Return the bare, NFKC-normalized file name of an upload; raise UploadError if it is unsafe."""
    name = unicodedata.normalize("NFKC", str(raw or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()  # browsers may send a path; keep the last part
    if not name or name.startswith("."):
        raise UploadError(f"文件名“{name}”无效：不能为空或以点开头")
    if ".." in name:
        raise UploadError(f"文件名“{name}”无效：不能包含“..”")
    if any(ord(c) < 32 or ord(c) == 127 or c in _FORBIDDEN_NAME_CHARS for c in name):
        raise UploadError(f"文件名“{name!r}”含有不允许的字符")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadError(f"文件名太长（上限 {MAX_NAME_BYTES} 字节），请改短后再上传")
    path = Path(name)
    if path.suffix.lower() not in UPLOAD_SUFFIXES or not path.stem.strip():
        allowed = "、".join(UPLOAD_SUFFIXES)
        raise UploadError(f"不支持的文件类型“{path.suffix or name}”：只能上传 {allowed}")
    return name


def prepare_upload(filename: str, data: bytes, progress: Progress | None = None) -> Upload:
    """Return the upload validated and converted to storable text; raise UploadError otherwise.

    `progress(stage, done, total)` hears about long conversions (OCR, page by page).
    """
    name = safe_name(filename)
    if not data:
        raise UploadError(f"{name} 是空文件")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} 有 {len(data) / 1024 / 1024:.1f} MB，超过了 {MAX_UPLOAD_BYTES // 1024 // 1024} MB 的上限"
        )
    suffix = Path(name).suffix.lower()
    meta = None
    if suffix in TEXT_SUFFIXES:
        try:
            text, _ = decode(data)
        except DecodeError as exc:
            raise UploadError(f"{name} 不是可识别的文本（支持 UTF-8、UTF-16、GB18030、Big5 编码的文字）") from exc
        stored, payload, converted = Path(name).stem + suffix, data, False
    else:
        result = _CONVERTERS[suffix](data, name, progress)
        result = Converted(result.text, result.regions, result.title, result.date, name, result.notes)
        text = result.text
        stored, payload, converted, meta = Path(name).stem + ".txt", text.encode("utf-8"), True, result.meta_json()
        if len(payload) > MAX_CONVERTED_BYTES:
            raise _too_much_text(name, len(payload))
    cleaned, _ = clean(text.replace("\r\n", "\n").replace("\r", "\n"))
    if not cleaned.strip():
        raise UploadError(f"{name} 中没有可检索的文字")
    return Upload(source=name, name=stored, data=payload, converted=converted, meta=meta)


# A page whose text layer has fewer visible characters than this is a scan (or a picture) to read by OCR.
MIN_TEXT_LAYER_CHARS = 10


def pdf_text(data: bytes, name: str = "PDF", progress: Progress | None = None) -> Converted:
    """Return a PDF's text, page by page (image-only pages read by OCR), with page regions; raise UploadError."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UploadError(f"{name} 已加密，请先解除密码保护")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UploadError(f"{name} 有 {len(reader.pages)} 页，超过了 {MAX_PDF_PAGES} 页的上限：请拆分成几个文件再上传")
        pages, size = [], 0
        for page in reader.pages:  # stops as soon as the text is too long, not after reading every page
            pages.append((page.extract_text() or "").strip())
            size += len(pages[-1].encode("utf-8")) + 2
            if size > MAX_CONVERTED_BYTES:
                raise _too_much_text(name, size, partial=True)
        title, date = _pdf_metadata(reader)
    except UploadError:
        raise
    except Exception as exc:  # a parser fed untrusted bytes can fail in many ways; all mean "unreadable"
        raise UploadError(f"无法读取 {name}：不是有效的 PDF（{type(exc).__name__}）") from exc
    scanned = [i for i, text in enumerate(pages) if len("".join(text.split())) < MIN_TEXT_LAYER_CHARS]
    ocr_lines: dict[int, list] = {}
    if scanned:
        ocr_lines = _ocr_pdf_pages(data, name, scanned, progress)
    tables = _pdf_tables(data, name, set(scanned)) if len(scanned) < len(pages) else None
    builder = TextBuilder()
    for i, text in enumerate(pages):
        if i in ocr_lines:
            span = _add_ocr_lines(builder, ocr_lines[i])
        elif tables and i in tables.pages:
            start = None
            for block in tables.pages[i]:
                if isinstance(block, str):
                    piece = builder.add(block)
                else:
                    add_table(builder, block)
                    piece = (builder.regions[-1].start, builder.size)  # add_table marks the whole table last
                start = piece[0] if start is None else start
            span = (start if start is not None else builder.size, builder.size)
        else:
            span = builder.add(text) if text else (builder.size, builder.size)
        builder.mark("page", (span[0], max(span[1], span[0])), f"第{i + 1}页")
    text = builder.text
    if not text.strip():
        raise UploadError(f"{name} 中没有可提取的文字（扫描页经 OCR 也没有识别出文字）")
    notes = [f"PDF，{len(pages)}页"]
    if ocr_lines:
        notes.append(f"{_page_list(sorted(ocr_lines))}经OCR识别")
    with_tables = sorted(i for i, blocks in (tables.pages if tables else {}).items()
                         if any(not isinstance(b, str) for b in blocks))
    if with_tables:
        notes.append(f"{_page_list(with_tables)}有表格")
    if tables and tables.unread_from is not None:
        notes.append(f"第{tables.unread_from + 1}页起未识别表格（超出识别时限）")
    return Converted(text, _nonempty_pages(builder.regions), title, date, notes=tuple(notes))


def _pdf_tables(data: bytes, name: str, skip: set[int]):
    """Return the pages of a PDF that hold tables; none when pdfplumber cannot read it (the text is kept)."""
    from rag import pdf_tables

    try:
        return pdf_tables.find_tables(data, skip)
    except Exception as exc:  # pypdf read the text already; a table reader failing must not lose it
        log.warning("tables of %s not read: %s", name, exc)
        return pdf_tables.TablePages({})


def _nonempty_pages(regions: list[Region]) -> tuple[Region, ...]:
    # An empty page has no text to cite; it keeps its number because labels are fixed when built.
    return tuple(r for r in regions if r.end > r.start)


def _page_list(numbers: list[int]) -> str:
    pages = [n + 1 for n in numbers]
    if len(pages) > 3 and pages == list(range(pages[0], pages[-1] + 1)):
        return f"第{pages[0]}–{pages[-1]}页"
    return "第" + "、".join(str(p) for p in pages[:10]) + ("等" if len(pages) > 10 else "") + "页"


def _pdf_metadata(reader) -> tuple[str, str | None]:
    """Return the PDF's own title and creation date (document information), when it states them."""
    info = reader.metadata or {}
    title = str(info.get("/Title") or "").strip()
    raw = str(info.get("/CreationDate") or "")
    match = re.match(r"D:(\d{4})(\d{2})(\d{2})", raw)
    date = f"{match[1]}-{match[2]}-{match[3]}" if match else None
    return (title if _meaningful_title(title) else ""), date


def _meaningful_title(title: str) -> bool:
    # Producers fill /Title with the source file name or "Microsoft Word - 文档1.docx": not a title.
    return bool(title) and not re.search(r"\.(docx?|pdf|txt|xlsx?)$|^(untitled|无标题)", title, re.I)


def _ocr_pdf_pages(data: bytes, name: str, numbers: list[int], progress: Progress | None) -> dict[int, list]:
    from rag import ocr

    if len(numbers) > MAX_OCR_PAGES:
        raise UploadError(f"{name} 有 {len(numbers)} 页需要 OCR 识别（扫描页），超过了 {MAX_OCR_PAGES} 页的上限"
                          f"（每页约 4 秒）：请拆分成几个文件再上传")
    try:
        pages = {}
        for done, (number, image) in enumerate(ocr.render_pdf_pages(data, numbers), 1):
            if progress:
                progress(f"OCR 第{number + 1}页", done - 1, len(numbers))
            # The terminal of `rag chat` shows warnings only; a scan takes seconds a page, so say each one.
            print(f"OCR {name}：第{number + 1}页（{done}/{len(numbers)}）", file=sys.stderr, flush=True)
            pages[number] = ocr.read_image(image)
        if progress:
            progress("OCR", len(numbers), len(numbers))
        return pages
    except ocr.OCRUnavailable as exc:
        raise UploadError(f"{name} 含扫描页（没有文字层）：{exc}") from exc


def _add_ocr_lines(builder: TextBuilder, lines: list) -> tuple[int, int]:
    start = None
    end = builder.size
    for k, line in enumerate(lines):
        span = builder.add(line.text, "\n\n" if k == 0 else "\n")
        start = span[0] if start is None else start
        builder.mark("ocr", span, "", line.confidence)
        end = span[1]
    return (start if start is not None else builder.size), end


def image_text(data: bytes, name: str = "图片", progress: Progress | None = None) -> Converted:
    """Return the text OCR reads in a .png/.jpg image, each line's confidence kept; raise UploadError."""
    from PIL import Image, UnidentifiedImageError

    from rag import ocr

    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise UploadError(f"{name} 有 {image.width}×{image.height} 像素，超过了 {MAX_IMAGE_PIXELS // 1_000_000} 百万像素的上限")
        image.load()
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UploadError(f"无法读取 {name}：不是有效的图片（{type(exc).__name__}）") from exc
    try:
        if progress:
            progress("OCR", 0, 1)
        lines = ocr.read_image(image)
    except ocr.OCRUnavailable as exc:
        raise UploadError(f"{name} 是图片：{exc}") from exc
    if progress:
        progress("OCR", 1, 1)
    builder = TextBuilder()
    _add_ocr_lines(builder, lines)
    if not builder.text.strip():
        raise UploadError(f"{name} 中没有识别出文字")
    return Converted(builder.text, tuple(builder.regions), notes=("图片，经OCR识别",))


def docx_text(data: bytes, name: str = "Word 文档", progress: Progress | None = None) -> Converted:
    """Return the paragraphs and tables (one line per row) of a .docx in document order; raise UploadError."""
    import docx
    from docx.table import Table as DocxTable

    check_docx_zip(data, name)
    builder, tables = TextBuilder(), 0
    try:
        document = docx.Document(io.BytesIO(data))
        for block in document.iter_inner_content():
            if isinstance(block, DocxTable):
                grid = [[" ".join(c.text.split()) for c in row.cells] for row in block.rows]
                table = table_from_grid(f"表{tables + 1}", grid, merged_header_rows(grid))
                if table is not None:
                    tables += 1
                    add_table(builder, table)
            elif block.text.strip():
                builder.add(block.text.strip())
        props = document.core_properties
        title = (props.title or "").strip()
        date = _iso_day(props.created)
    except Exception as exc:  # see pdf_text
        raise UploadError(f"无法读取 {name}：不是有效的 .docx 文件（{type(exc).__name__}）") from exc
    notes = (f"Word，{tables}个表格",) if tables else ()
    return Converted(builder.text, tuple(builder.regions), title, date, notes=notes).with_title_line()


def _iso_day(value) -> str | None:
    return value.strftime("%Y-%m-%d") if isinstance(value, (dt.date, dt.datetime)) else None


def xlsx_text(data: bytes, name: str = "表格", progress: Progress | None = None) -> Converted:
    """Return the rows of every worksheet of an .xlsx as "列名：值；…" lines, with table and row regions."""
    check_zip(data, name, "xl/workbook.xml", ".xlsx")
    try:
        tables = xlsx_tables(data)
    except ValueError as exc:
        raise UploadError(f"{name}：{exc}：请拆分后再上传") from exc
    except RuntimeError as exc:
        raise UploadError(str(exc)) from exc
    except Exception as exc:  # see pdf_text
        raise UploadError(f"无法读取 {name}：不是有效的 .xlsx 文件（{type(exc).__name__}）") from exc
    return _table_text(name, tables, "Excel")


def csv_text(data: bytes, name: str = "表格", progress: Progress | None = None) -> Converted:
    """Return the rows of a .csv as "列名：值；…" lines (the first row names the columns)."""
    try:
        text, _ = decode(data)
        table = csv_table(text.lstrip("\ufeff"), Path(name).stem)
    except DecodeError as exc:
        raise UploadError(f"{name} 不是可识别的文本：{exc}") from exc
    except ValueError as exc:
        raise UploadError(f"{name}：{exc}：请拆分后再上传") from exc
    return _table_text(name, [table] if table else [], "CSV")


def _table_text(name: str, tables: list, kind: str) -> Converted:
    builder, rows, missing = TextBuilder(), 0, 0
    for table in tables:
        rows += add_table(builder, table)
        missing += table.formulas_without_value
    if not rows:
        raise UploadError(f"{name} 中没有可检索的文字（表格是空的）")
    notes = [f"{kind}，{len(tables)}个表，{rows}行"]
    if missing:
        notes.append(f"{missing}个公式单元格没有计算结果（请在 Excel 中打开并保存后再上传）")
    return Converted(builder.text, tuple(builder.regions), Path(name).stem, notes=tuple(notes))


def check_docx_zip(data: bytes, name: str = "Word 文档") -> None:
    """Refuse a .docx whose zip directory declares too much content, before any of it is unpacked or parsed."""
    body = check_zip(data, name, "word/document.xml", ".docx")
    paragraphs = body.count(b"<w:p>") + body.count(b"<w:p ") + body.count(b"<w:p/>")
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise UploadError(f"{name} 有 {paragraphs} 个段落，超过了 {MAX_DOCX_PARAGRAPHS} 个的上限：请拆分后再上传")


def check_zip(data: bytes, name: str, part: str, kind: str) -> bytes:
    """Return the zip member `part` of an Office file after refusing one that declares too much content.

    The declared sizes are a hard bound: Python's zipfile never returns more than an entry declares
    (a lie ends in a CRC error), so checking the directory bounds what python-docx or openpyxl can read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(entry.file_size for entry in archive.infolist())
            if total > MAX_ZIP_UNCOMPRESSED:
                raise UploadError(f"{name} 解压后有 {total / _MB:.1f} MB，超过了 {MAX_ZIP_UNCOMPRESSED // _MB} MB 的上限："
                                  "文档内容过多，请拆分后再上传")
            if total > MAX_ZIP_RATIO * len(data):
                raise UploadError(f"{name} 解压后是原文件的 {total / len(data):.0f} 倍（上限 {MAX_ZIP_RATIO} 倍）："
                                  "压缩比异常，疑似压缩炸弹，已拒绝")
            return archive.read(part)
    except UploadError:
        raise
    except Exception as exc:  # not a zip, or no such part: the Office reader would fail the same way
        raise UploadError(f"无法读取 {name}：不是有效的 {kind} 文件（{type(exc).__name__}）") from exc


def _too_much_text(name: str, size: int, partial: bool = False) -> UploadError:
    amount = f"超过 {size / _MB:.1f} MB" if partial else f"有 {size / _MB:.1f} MB"
    return UploadError(f"{name} 转换出的文字{amount}，超过了 {MAX_CONVERTED_BYTES // _MB} MB 的上限：请拆分后再上传")


def html_text(data: bytes, name: str = "网页", progress: Progress | None = None) -> Converted:
    """Return the main text of an HTML page (scripts, markup and navigation dropped), its tables as row lines."""
    import html as htmllib

    import nh3
    import trafilatura

    try:
        page, _ = decode(data)
    except DecodeError as exc:
        raise UploadError(f"{name} 不是可识别的文本：{exc}") from exc
    try:
        page, grids, title, date = _plain_html(page)
        text = trafilatura.extract(page, include_comments=False, include_tables=False) if page.strip() else None
        text = text or (trafilatura.extract(page, include_comments=False, include_tables=False, favor_recall=True)
                        if page.strip() else None)
        meta = trafilatura.extract_metadata(page) if page.strip() else None
    except Exception as exc:  # see pdf_text
        raise UploadError(f"无法解析 {name}（{type(exc).__name__}）") from exc
    if not text:
        # A page too small for boilerplate removal: keep all visible text (nh3 drops script/style bodies).
        text = htmllib.unescape(nh3.clean(page, tags=set()))
    lines = [line for line in text.strip().split("\n") if not _link_bar(line)]
    builder = TextBuilder()
    body = "\n".join(lines).strip()
    if body:
        builder.add(body)
    for k, (caption, grid) in enumerate(grids, 1):
        table = table_from_grid(caption or f"表{k}", grid, merged_header_rows(grid))
        if table is not None:
            add_table(builder, table)
    title = getattr(meta, "title", None) or title or ""
    return Converted(builder.text, tuple(builder.regions), title.strip(), date).with_title_line()


# "首页 | 关于 | 联系我们": a line of short items between separators is a menu, not content.
_BAR_SEPARATORS = re.compile(r"\s*[|｜·•/>»]\s*|\s{2,}")


def _link_bar(line: str) -> bool:
    items = [item for item in _BAR_SEPARATORS.split(line.strip()) if item]
    return len(items) >= 2 and all(len(item) <= 6 for item in items) and not re.search(r"[。！？；，]", line)


# Inline elements: trafilatura puts each on a line of its own ("预计达到\n86吨\n。"), which splits
# sentences, so they are unwrapped into their text first. Dropped elements go with their content:
# a <script> inside <h1> must not reach the title.
_INLINE_TAGS = ("a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i",
                "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time",
                "tt", "u", "var")
_DROPPED_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas")


# Page furniture whose text is never the article: menus, breadcrumbs, site header and footer.
_NAVIGATION_XPATH = ("//nav | //header[not(ancestor::article)] | //footer[not(ancestor::article)] | //aside | //*[@role='navigation' or @role='banner' "
                     "or @role='contentinfo'] | //*[contains(concat(' ', normalize-space(@class), ' '), ' breadcrumb ')"
                     " or contains(concat(' ', normalize-space(@class), ' '), ' nav ')"
                     " or contains(concat(' ', normalize-space(@class), ' '), ' menu ')]")
# Publication dates a page declares for itself; a date merely mentioned in the text is never taken.
_DATE_META = ("article:published_time", "og:published_time", "pubdate", "publishdate", "publish_date",
              "date", "dc.date", "dc.date.issued", "dcterms.created", "datepublished")


def _plain_html(page: str) -> tuple[str, list[tuple[str, list[list[str]]]], str, str | None]:
    """Return (page without scripts, styles, comments, navigation and tables; the tables as grids; <title>; date)."""
    import lxml.etree as etree
    import lxml.html

    page = re.sub(r"^\s*<\?xml[^>]*\?>", "", page)  # lxml refuses a str that declares its encoding
    if not page.strip():
        return page, [], "", None
    tree = lxml.html.document_fromstring(page)
    etree.strip_elements(tree, *_DROPPED_TAGS, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    title = " ".join(" ".join(tree.xpath("//head/title//text()")).split())
    date = _html_date(tree)
    for element in tree.xpath(_NAVIGATION_XPATH):
        if element.getparent() is not None and element.tag not in ("html", "body"):
            element.drop_tree()
    grids = []
    for table in tree.xpath("//table[not(ancestor::table)]"):
        caption = " ".join(" ".join(table.xpath("./caption//text()")).split())
        grids.append((caption, _html_grid(table)))
        table.drop_tree()
    etree.strip_tags(tree, *_INLINE_TAGS)
    return lxml.html.tostring(tree, encoding="unicode"), grids, title, date


def _html_date(tree) -> str | None:
    for element in tree.xpath("//meta[@content]"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").lower()
        if key in _DATE_META:
            match = re.match(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})", element.get("content", ""))
            if match:
                return f"{int(match[1]):04d}-{int(match[2]):02d}-{int(match[3]):02d}"
    return None


def _html_grid(table) -> list[list[str]]:
    """Return a <table> as a grid of cell texts, cells spanning rows or columns repeated where they reach."""
    grid: list[list[str]] = []
    pending: dict[tuple[int, int], str] = {}  # cells filled by a rowspan from above
    for r, row in enumerate(table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")):
        out: list[str] = []
        col = 0
        for cell in row.xpath("./td | ./th"):
            while (r, col) in pending:
                out.append(pending.pop((r, col)))
                col += 1
            text = " ".join(cell.text_content().split())
            cols = _span(cell.get("colspan"))
            rows = _span(cell.get("rowspan"))
            for c in range(cols):
                out.append(text)
                for extra in range(1, rows):
                    pending[(r + extra, col + c)] = text
            col += cols
        while (r, col) in pending:
            out.append(pending.pop((r, col)))
            col += 1
        grid.append(out)
    return grid


def _span(value) -> int:
    try:
        return max(1, min(int(value), 100))
    except (TypeError, ValueError):
        return 1


_CONVERTERS: dict[str, Callable[[bytes, str, Progress | None], Converted]] = {
    ".pdf": pdf_text,
    ".docx": docx_text,
    ".html": html_text,
    ".htm": html_text,
    ".xlsx": xlsx_text,
    ".csv": csv_text,
    ".png": image_text,
    ".jpg": image_text,
    ".jpeg": image_text,
}


# --- the knowledge base ------------------------------------------------------------------------


class KnowledgeBase:
    """A documents folder and its index, shared by all sessions. Cheap to create; `load` reads the index."""

    def __init__(self, docs_dir: Path, index_dir: Path, embedder: Embedder | None = None) -> None:
        self.docs_dir = Path(docs_dir)
        self.index_dir = Path(index_dir)
        self._embedder = embedder
        self._index: Index | None = None
        # Writers (upload, delete, rebuild) take turns. Readers need no lock: they take the
        # `_index` reference once per question, and rebinding an attribute is atomic.
        self._change = threading.Lock()
        self.updater: threading.Thread | None = None  # the background update started by `update_in_background`

    @property
    def index(self) -> Index:
        """Return the live index; raise IndexProblem before `load` or `rebuild` succeeded."""
        index = self._index
        if index is None:
            raise IndexProblem(f"no index loaded from {self.index_dir}")
        return index

    @property
    def exists(self) -> bool:
        """True when the index folder has a live build (it may still be stale or broken)."""
        return (self.index_dir / "CURRENT").exists()

    def load(self) -> list[str]:
        """Load the live index; return why it is stale (empty when current). Raise IndexProblem if unusable."""
        index = load_index(self.index_dir, self._embedder, long_lived=True)
        self._embedder = index.embedder
        self._index = index
        return staleness(index.manifest, self.docs_dir)

    def rebuild(self, progress: Progress | None = None) -> BuildReport:
        """Index the documents folder again (only new text is embedded) and swap the new index in."""
        with self._change:
            return self._rebuild(progress)

    def update_in_background(self, done: Callable[[BuildReport | None, Exception | None], None] | None = None,
                             ) -> threading.Thread:
        """Start rebuilding in a daemon thread while the loaded index keeps answering; return the thread.

        The new index is swapped in when its build succeeds; if it fails, the loaded one stays. `done`
        gets (report, None) or (None, error). A kill meanwhile leaves the previous build live (atomic builds).
        """
        def run() -> None:
            try:
                report = self.rebuild()
            except Exception as exc:  # keep serving the index that is loaded
                log.warning("updating the index in the background failed: %s", exc)
                if done:
                    done(None, exc)
            else:
                if done:
                    done(report, None)

        self.updater = threading.Thread(target=run, name="index-update", daemon=True)
        self.updater.start()
        return self.updater

    def _rebuild(self, progress: Progress | None) -> BuildReport:
        if self._embedder is None:
            self._embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
        report = build_index(self.docs_dir, self.index_dir, self._embedder, progress=progress)
        if progress:
            progress("load", 0, 1)
        self._index = _ready(load_index(self.index_dir, self._embedder))
        return report

    def documents(self) -> list[DocumentRow]:
        """Return the indexed documents (and files the index skipped), sorted by file name."""
        index = self.index
        chunks: dict[str, int] = {}
        for chunk in index.chunks:
            chunks[chunk.doc_id] = chunks.get(chunk.doc_id, 0) + 1
        rows = [
            DocumentRow(doc.title, doc.file, doc.date, chunks.get(doc.id, 0), self._added(doc.file), document_note(doc))
            for doc in index.documents.values()
        ]
        for file, reason in index.manifest.get("skipped", {}).items():
            rows.append(DocumentRow(file, file, None, 0, self._added(file), note=f"未索引：{reason}"))
        return sorted(rows, key=lambda r: r.file)

    def _added(self, file: str) -> str:
        try:
            stamp = (self.docs_dir / file).stat().st_mtime
        except OSError:
            return ""
        return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

    def add(self, filename: str, data: bytes, progress: Progress | None = None) -> tuple[Upload, BuildReport]:
        """Store one upload and re-index; return it and the build report. On any failure nothing changes."""
        upload = prepare_upload(filename, data, progress)
        with self._change:
            target = self._inside(upload.name)
            self._check_new(upload)
            meta_target = meta_path(target)
            tag = uuid.uuid4().hex[:8]
            tmp = self.docs_dir / f".upload-{tag}.part"  # a suffix the loader ignores
            tmp.write_bytes(upload.data)
            meta_tmp = self.docs_dir / f".upload-{tag}.meta.part"
            try:
                # The metadata first: a text without its pages would be indexed without them.
                if upload.meta is not None:
                    meta_tmp.write_bytes(upload.meta)
                    os.replace(meta_tmp, meta_target)
                else:
                    meta_target.unlink(missing_ok=True)  # one left by an earlier file of this name
                os.replace(tmp, target)
                report = self._rebuild(progress)
            except BaseException:
                tmp.unlink(missing_ok=True)
                meta_tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                meta_target.unlink(missing_ok=True)
                raise
        return upload, report

    def _check_new(self, upload: Upload) -> None:
        stem = Path(upload.name).stem
        # Text is compared, not bytes: the same article re-saved as GB18030, with a BOM or CRLF is no new document.
        digest = text_fingerprint(upload.data) or hashlib.sha256(upload.data).hexdigest()
        for path in self._files():
            if path.stem == stem:
                raise UploadError(f"已有同名文档 {path.name}：请先删除它，或把文件改名后再上传")
            data = path.read_bytes()
            if digest in (text_fingerprint(data), hashlib.sha256(data).hexdigest()):
                raise UploadError(f"{upload.source} 与已有文档 {path.name} 内容相同")

    def delete(self, file: str, progress: Progress | None = None) -> BuildReport:
        """Remove one document file and re-index; return the build report. On failure the file is restored."""
        with self._change:
            names = {p.name: p for p in self._files()}
            if file not in names:
                raise UploadError(f"知识库中没有文件“{file}”")
            if len(names) == 1:
                raise UploadError("这是最后一篇文档：知识库至少要保留一篇，请先上传新文档再删除它")
            path = names[file]
            tag = uuid.uuid4().hex[:8]
            held = path.with_name(f".{path.name}.{tag}.deleted")  # ignored by the loader
            meta, meta_held = meta_path(path), path.with_name(f".{meta_path(path).name}.{tag}.deleted")
            os.replace(path, held)
            if meta.exists():
                os.replace(meta, meta_held)
            try:
                report = self._rebuild(progress)
            except BaseException:
                os.replace(held, path)
                if meta_held.exists():
                    os.replace(meta_held, meta)
                raise
            held.unlink(missing_ok=True)
            meta_held.unlink(missing_ok=True)
            return report

    def _files(self) -> list[Path]:
        if not self.docs_dir.is_dir():
            return []
        return sorted(p for p in self.docs_dir.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)

    def adopt_newer_build(self) -> Index | None:
        """Load the build `CURRENT` names when another process made it; return it, or None when nothing
        changed, a change of this process is running, or the new build cannot be loaded (kept as is).

        Swapping is safe as in `rebuild`: questions under way finish on the index they took.
        """
        if not self._change.acquire(blocking=False):
            return None  # an upload, delete or rebuild of ours is switching builds right now
        try:
            loaded = self._index
            try:
                if loaded is not None and current_build(self.index_dir) == loaded.path:
                    return None
                index = _ready(load_index(self.index_dir, self._embedder))
            except IndexProblem as exc:
                log.warning("a newer index in %s cannot be loaded (%s); still serving the loaded one", self.index_dir, exc)
                return None
            self._embedder = index.embedder
            self._index = index
            return index
        finally:
            self._change.release()

    @property
    def changing(self) -> bool:
        """True while an upload, delete or rebuild (or the start-up's background update) is running."""
        return self._change.locked()

    def _inside(self, name: str) -> Path:
        """Return docs_dir/name, refusing any name that would resolve outside the folder."""
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        root = self.docs_dir.resolve()
        target = (root / name).resolve()
        if target.parent != root:
            raise UploadError(f"文件名“{name}”无效")
        return target


def _ready(index: Index) -> Index:
    """Build what questions need from a new build before it is swapped in (the English glossary, ~1.4 s),
    so the first English question after an upload or rebuild does not wait for it."""
    glossary_for(index.keywords)
    return index


def document_note(doc: Document) -> str:
    """Return the 备注 of a document: what it was converted from, its pages, tables and OCR, its size."""
    parts = []
    if doc.source and doc.source != doc.file:
        parts.append(f"由 {doc.source} 转换")
    tables = sum(1 for r in doc.regions if r.kind == "table")
    rows = sum(1 for r in doc.regions if r.kind == "row")
    ocr = [r.confidence for r in doc.regions if r.kind == "ocr" and r.confidence is not None]
    parts.extend(doc.notes)
    if tables:
        parts.append(f"{tables}个表格共{rows}行")
    if ocr:
        low = sum(1 for c in ocr if c < LOW_CONFIDENCE)
        parts.append(f"OCR识别{len(ocr)}行" + (f"，{low}行置信度低" if low else ""))
    parts.append(f"{len(doc.text)}字")
    return "；".join(parts)


def remove_deleted_leftovers(docs_dir: Path) -> list[Path]:
    """Remove documents a killed `delete` left hidden (`.name.<hex>.deleted`); return them.

    The delete had been asked for and the loader already ignores these files, so finishing it is
    right whether or not the killed rebuild got as far as the switch. Call it at start-up, before any
    delete of this process runs.
    """
    docs_dir = Path(docs_dir)
    removed = [p for p in docs_dir.iterdir() if p.is_file() and _deleted_leftover(p.name)] if docs_dir.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _deleted_leftover(name: str) -> bool:
    hidden, tag, suffix = (name.rsplit(".", 2) + ["", ""])[:3]  # `delete` names them .<name>.<8 hex>.deleted
    return (name.startswith(".") and len(hidden) > 1 and suffix == "deleted" and len(tag) == 8
            and all(c in "0123456789abcdef" for c in tag))
