"""PDF: the text layer page by page, its tables (pdfplumber), and scanned pages read by OCR."""

from __future__ import annotations

import io
import logging
import re
import sys

from rag.convert.limits import EMPTY, ENCRYPTED, NO_OCR, MAX_OCR_PAGES, MAX_PDF_PAGES, TOO_LARGE, Budget, ConversionError
from rag.convert.ocr import add_ocr_lines
from rag.convert.result import Converted, TextBuilder
from rag.convert.tables import add_table
from rag.types import Region

log = logging.getLogger(__name__)

MIN_TEXT_LAYER_CHARS = 10


def pdf_text(data: bytes, name: str = "PDF", progress=None) -> Converted:
    """Return a PDF's text, page by page (image-only pages read by OCR), with page regions; raise ConversionError."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ConversionError(f"{name} 已加密，请先解除密码保护", ENCRYPTED)
        if len(reader.pages) > MAX_PDF_PAGES:
            raise ConversionError(f"{name} 有 {len(reader.pages)} 页，超过了 {MAX_PDF_PAGES} 页的上限：请拆分成几个文件再上传", TOO_LARGE)
        pages, budget = [], Budget(name)
        for page in reader.pages:  # stops as soon as the text is too long, not after reading every page
            pages.append((page.extract_text() or "").strip())
            budget.emit(pages[-1])
        title, date = _pdf_metadata(reader)
    except ConversionError:
        raise
    except Exception as exc:  # a parser fed untrusted bytes can fail in many ways; all mean "unreadable"
        raise ConversionError(f"无法读取 {name}：不是有效的 PDF（{type(exc).__name__}）") from exc
    scanned = [i for i, text in enumerate(pages) if len("".join(text.split())) < MIN_TEXT_LAYER_CHARS]
    ocr_lines: dict[int, list] = {}
    if scanned:
        ocr_lines = _ocr_pdf_pages(data, name, scanned, progress)
    tables = _pdf_tables(data, name, set(scanned)) if len(scanned) < len(pages) else None
    builder = TextBuilder(budget=Budget(name))
    for i, text in enumerate(pages):
        if i in ocr_lines:
            span = add_ocr_lines(builder, ocr_lines[i])
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
        raise ConversionError(f"{name} 中没有可提取的文字（扫描页经 OCR 也没有识别出文字）", EMPTY)
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
    from rag.convert import pdf_tables

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


def _ocr_pdf_pages(data: bytes, name: str, numbers: list[int], progress) -> dict[int, list]:
    from rag.convert import ocr

    if len(numbers) > MAX_OCR_PAGES:
        raise ConversionError(f"{name} 有 {len(numbers)} 页需要 OCR 识别（扫描页），超过了 {MAX_OCR_PAGES} 页的上限"
                          f"（每页约 4 秒）：请拆分成几个文件再上传", TOO_LARGE)
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
        raise ConversionError(f"{name} 含扫描页（没有文字层）：{exc}", NO_OCR) from exc


