"""Office files: .docx paragraphs and tables in document order, .xlsx worksheets as row passages."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

from rag.convert.limits import (ENCRYPTED, MAX_DOCX_PARAGRAPHS, MAX_ZIP_RATIO, MAX_ZIP_UNCOMPRESSED, TOO_LARGE,
                                Budget, ConversionError, megabytes)
from rag.convert.result import Converted, TextBuilder
from rag.convert.tables import add_table, merged_header_rows, table_from_grid, tables_text, xlsx_tables


def docx_text(data: bytes, name: str = "Word 文档", progress=None) -> Converted:
    """Return the paragraphs and tables (one line per row) of a .docx in document order; raise ConversionError."""
    import docx
    from docx.table import Table as DocxTable

    check_docx_zip(data, name)
    budget = Budget(name)
    builder, tables = TextBuilder(budget=budget), 0
    try:
        document = docx.Document(io.BytesIO(data))
        for block in document.iter_inner_content():
            if isinstance(block, DocxTable):
                grid = _docx_grid(block, budget)
                table = table_from_grid(f"表{tables + 1}", grid, merged_header_rows(grid))
                if table is not None:
                    tables += 1
                    add_table(builder, table)
            elif block.text.strip():
                builder.add(block.text.strip())
        props = document.core_properties
        title = (props.title or "").strip()
        date = _iso_day(props.created)
    except ConversionError:
        raise
    except Exception as exc:  # see pdf_text
        raise ConversionError(f"无法读取 {name}：不是有效的 .docx 文件（{type(exc).__name__}）") from exc
    notes = (f"Word，{tables}个表格",) if tables else ()
    return Converted(builder.text, tuple(builder.regions), title, date, notes=notes).with_title_line()


def _docx_grid(table, budget: Budget) -> list[list[str]]:
    """Return a Word table as a grid of cell texts, merged cells repeated within the table's real width.

    python-docx's `row.cells` repeats a cell once per grid column it declares it spans: a 1.1 KB file
    declaring gridSpan 10,000,000 kept a conversion busy for minutes. Spans are clamped to the width.
    """
    from docx.table import _Cell

    rows = table._tbl.tr_lst
    width = max([len(table._tbl.tblGrid.gridCol_lst)] + [len(tr.tc_lst) for tr in rows])
    grid: list[list[str]] = []
    for tr in rows:
        out: list[str] = []
        for tc in tr.tc_lst:
            span = max(1, min(tc.grid_span, width - len(out)))
            budget.fill(span)
            if tc.vMerge == "continue" and grid and len(grid[-1]) > len(out):
                text = grid[-1][len(out)]  # a cell merged down repeats the value of the one above
            else:
                text = " ".join(_Cell(tc, table).text.split())
            out.extend([text] * span)
        grid.append(out)
    return grid


def _iso_day(value) -> str | None:
    return value.strftime("%Y-%m-%d") if isinstance(value, (dt.date, dt.datetime)) else None


def xlsx_text(data: bytes, name: str = "表格", progress=None) -> Converted:
    """Return the rows of every worksheet of an .xlsx as "列名：值；…" lines, with table and row regions."""
    check_zip(data, name, "xl/workbook.xml", ".xlsx")
    budget = Budget(name)
    try:
        tables = xlsx_tables(data, budget)
    except ConversionError:
        raise
    except ValueError as exc:
        raise ConversionError(f"{name}：{exc}：请拆分后再上传", TOO_LARGE) from exc
    except RuntimeError as exc:
        raise ConversionError(str(exc)) from exc
    except Exception as exc:  # see pdf_text
        raise ConversionError(f"无法读取 {name}：不是有效的 .xlsx 文件（{type(exc).__name__}）") from exc
    return tables_text(name, tables, "Excel", TextBuilder(budget=budget))


def check_docx_zip(data: bytes, name: str = "Word 文档") -> None:
    """Refuse a .docx whose zip directory declares too much content, before any of it is unpacked or parsed."""
    body = check_zip(data, name, "word/document.xml", ".docx")
    paragraphs = body.count(b"<w:p>") + body.count(b"<w:p ") + body.count(b"<w:p/>")
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise ConversionError(f"{name} 有 {paragraphs} 个段落，超过了 {MAX_DOCX_PARAGRAPHS} 个的上限：请拆分后再上传", TOO_LARGE)


_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # directory entry names are UTF-16


def check_zip(data: bytes, name: str, part: str, kind: str) -> bytes:
    """Return the zip member `part` of an Office file after refusing one that declares too much content.

    The declared sizes are a hard bound: Python's zipfile never returns more than an entry declares
    (a lie ends in a CRC error), so checking the directory bounds what python-docx or openpyxl can read.
    """
    if data.startswith(_OLE_MAGIC):
        # A password-protected .docx/.xlsx is no zip but an OLE container holding an "EncryptedPackage"
        # stream (ECMA-376 encryption); any other OLE file is the old binary format (.doc/.xls) renamed.
        if _ENCRYPTED_PACKAGE in data:
            raise ConversionError(f"{name} 已加密，请先解除密码保护", ENCRYPTED)
        raise ConversionError(f"无法读取 {name}：这是旧版 Office 格式（.doc/.xls），请另存为 {kind} 后再上传")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(entry.file_size for entry in archive.infolist())
            if total > MAX_ZIP_UNCOMPRESSED:
                raise ConversionError(f"{name} 解压后有 {megabytes(total)} MB，超过了 {MAX_ZIP_UNCOMPRESSED // 1024 // 1024} MB 的上限："
                                  "文档内容过多，请拆分后再上传", TOO_LARGE)
            if total > MAX_ZIP_RATIO * len(data):
                raise ConversionError(f"{name} 解压后是原文件的 {total / len(data):.0f} 倍（上限 {MAX_ZIP_RATIO} 倍）："
                                  "压缩比异常，疑似压缩炸弹，已拒绝", TOO_LARGE)
            return archive.read(part)
    except ConversionError:
        raise
    except Exception as exc:  # not a zip, or no such part: the Office reader would fail the same way
        raise ConversionError(f"无法读取 {name}：不是有效的 {kind} 文件（{type(exc).__name__}）") from exc


