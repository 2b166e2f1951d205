"""Tables as passages: one passage per row, the header repeated ("指标：汽车产量；2025年：278.8万辆。").

A question about one cell then retrieves its row, and the citation names the table, the row and the
column. Merged header cells become joined column names ("产量·2025年"); cells merged down a column
repeat their value on every row they cover; formula cells give the value Excel last computed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass

from pathlib import Path

from rag.convert.limits import EMPTY, MAX_TABLE_ROWS, Budget, ConversionError
from rag.convert.result import Converted, TextBuilder

CELL_SEPARATOR = "："  # between a column's name and the row's value
ROW_SEPARATOR = "；"  # between the cells of a row
ROW_END = "。"
HEADER_JOIN = "·"  # 产量·2025年: the parts of a column named by merged header rows


@dataclass(frozen=True)
class Table:
    """A table read from a file: its label, column names, and (row number as the file counts it, cells) rows."""

    label: str  # "工作表“产量”", "表1"
    columns: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    formulas_without_value: int = 0


def cell_text(value, number_format: str = "") -> str:
    """Return a cell's value as shown: integers without ".0", percentages as %, dates as YYYY-MM-DD."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == dt.time() else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, (int, float)):
        if "%" in number_format:
            return f"{value * 100:.4g}%"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return f"{value:.10g}" if isinstance(value, float) else str(value)
    return " ".join(str(value).split())


def table_from_grid(label: str, grid: list[list[str]], header_rows: int = 1, first_row: int = 1,
                    row_numbers: list[int] | None = None, column_names: list[str] | None = None) -> Table | None:
    """Return the table of a filled grid (merged cells already repeated), its first `header_rows` rows naming columns.

    Rows are numbered as the file counts them: `row_numbers` (a sparse sheet's populated rows), else
    consecutively from `first_row`; blank rows are dropped but never renumber the rows after them.
    `column_names` name columns no header names (default "第n列").
    """
    numbers = row_numbers or range(first_row, first_row + len(grid))
    numbered = [(n, row) for n, row in zip(numbers, grid) if any(c.strip() for c in row)]
    if not numbered:
        return None
    width = max(len(r) for _, r in numbered)
    numbered = [(n, list(r) + [""] * (width - len(r))) for n, r in numbered]
    if len(numbered) == 1:  # a lone row has no header: its cells are the data ("载客量：120人")
        return Table(label, (), ((numbered[0][0], tuple(numbered[0][1])),))
    header_rows = max(1, min(header_rows, len(numbered) - 1))
    columns = []
    for col in range(width):
        parts = list(dict.fromkeys(numbered[r][1][col].strip() for r in range(header_rows)
                                   if numbered[r][1][col].strip()))
        fallback = column_names[col] if column_names and col < len(column_names) else f"第{col + 1}列"
        columns.append(HEADER_JOIN.join(parts) or fallback)
    rows = tuple((n, tuple(r)) for n, r in numbered[header_rows:])
    return Table(label, tuple(columns), rows)


def row_text(table: Table, cells: tuple[str, ...]) -> str:
    """Return one row as a passage: "列名：值；列名：值。" (empty cells left out)."""
    if not table.columns:
        values = [c.strip() for c in cells if c.strip()]
        if len(values) == 2:
            return CELL_SEPARATOR.join(values) + ROW_END
        return ROW_SEPARATOR.join(values) + ROW_END
    pairs = [f"{name}{CELL_SEPARATOR}{value.strip()}" for name, value in zip(table.columns, cells) if value.strip()]
    return ROW_SEPARATOR.join(pairs) + ROW_END if pairs else ""


def add_table(builder: TextBuilder, table: Table) -> int:
    """Append a table (its label line, then one line per row) with table and row regions; return rows written."""
    caption = builder.add(table.label)
    written = 0
    end = caption[1]
    for number, cells in table.rows:
        line = row_text(table, cells)
        if not line:
            continue
        span = builder.add(line, "\n")
        builder.mark("row", span, f"第{number}行")
        end = span[1]
        written += 1
    builder.mark("table", (caption[0], end), table.label)
    return written


def tables_text(name: str, tables: list, kind: str, builder: TextBuilder | None = None) -> Converted:
    """Return the tables of a spreadsheet as stored text, one passage per row; raise ConversionError when empty."""
    builder, rows, missing = builder or TextBuilder(), 0, 0
    for table in tables:
        rows += add_table(builder, table)
        missing += table.formulas_without_value
    if not rows:
        raise ConversionError(f"{name} 中没有可检索的文字（表格是空的）", EMPTY)
    notes = [f"{kind}，{len(tables)}个表，{rows}行"]
    if missing:
        notes.append(f"{missing}个公式单元格没有计算结果（请在 Excel 中打开并保存后再上传）")
    return Converted(builder.text, tuple(builder.regions), Path(name).stem, notes=tuple(notes))


# --- spreadsheets ------------------------------------------------------------------------------


def xlsx_tables(data: bytes, budget: Budget | None = None) -> list[Table]:
    """Return one table per non-empty worksheet of an .xlsx file, with merged cells and cached formula values.

    Only populated cells are read (a sheet holding A1 and XFD2000 is two cells, not 32 million), and
    merged ranges are clamped to them: openpyxl's normal mode makes an object for every cell a range
    covers, 819 million for A1:XFD50000, so sheets are streamed in read-only mode instead.
    """
    try:
        import openpyxl
    except ImportError as exc:
        raise RuntimeError("读取 .xlsx 需要 openpyxl：pip install openpyxl") from exc
    budget = budget or Budget()
    # Two views of one file: values as Excel last computed them, and which cells hold formulas.
    values = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    formulas = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    tables = []
    for sheet in values.worksheets:
        if not hasattr(sheet, "_worksheet_path"):
            continue  # a chart sheet: no cells
        cells, merged = _populated_cells(sheet, budget)
        raw, _ = _populated_cells(formulas[sheet.title], budget)
        missing = sum(1 for key, value in raw.items()
                      if isinstance(value, str) and value.startswith("=") and not cells.get(key))
        table = _sheet_table(sheet.title, cells, merged, budget)
        if table is not None:
            tables.append(Table(table.label, table.columns, table.rows, missing))
    return tables


def _populated_cells(sheet, budget: Budget) -> tuple[dict[tuple[int, int], str], list[tuple[int, int, int, int]]]:
    """Return a read-only worksheet's non-empty cells as {(row, column): text} and its merged ranges."""
    from openpyxl.cell.read_only import ReadOnlyCell
    from openpyxl.utils.cell import range_boundaries
    from openpyxl.worksheet._reader import WorkSheetParser

    book = sheet.parent
    cells: dict[tuple[int, int], str] = {}
    with sheet._get_source() as source:  # openpyxl's own streaming parser, as its read-only rows use it
        parser = WorkSheetParser(source, sheet._shared_strings, data_only=book.data_only, epoch=book.epoch,
                                 date_formats=book._date_formats, timedelta_formats=book._timedelta_formats)
        for _, row in parser.parse():
            budget.fill(len(row))
            for cell in row:
                if cell["value"] is None:
                    continue
                shown = ReadOnlyCell(sheet, cell["row"], cell["column"], cell["value"], cell["data_type"],
                                     cell["style_id"])
                text = cell_text(cell["value"], shown.number_format or "")
                if text:
                    cells[(cell["row"], cell["column"])] = text
        if len(cells) and len({r for r, _ in cells}) > MAX_TABLE_ROWS:
            raise ValueError(f"工作表“{sheet.title}”有 {len({r for r, _ in cells})} 行，超过了 {MAX_TABLE_ROWS} 行的上限")
        ranges = []
        for ref in (parser.merged_cells.mergeCell if parser.merged_cells else []):
            left, top, right, bottom = range_boundaries(ref.ref)
            ranges.append((top, left, bottom, right))
    return cells, ranges


def _sheet_table(title: str, cells: dict[tuple[int, int], str], merged: list[tuple[int, int, int, int]],
                 budget: Budget) -> Table | None:
    """Return the table of a sheet's populated cells, merged cells repeated within the populated extent."""
    if not cells:
        return None
    rows = sorted({r for r, _ in cells})
    cols = sorted({c for _, c in cells})
    budget.fill(len(rows) * len(cols))
    top = rows[0]
    row_at = {r: k for k, r in enumerate(rows)}
    col_at = {c: k for k, c in enumerate(cols)}
    grid = [[cells.get((r, c), "") for c in cols] for r in rows]
    header_rows = 1
    for min_row, min_col, max_row, max_col in merged:
        value = cells.get((min_row, min_col), "")
        # Only rows and columns that hold something are in the grid: a range reaching past them fills nothing more.
        covered_rows = [row_at[r] for r in rows if min_row <= r <= max_row]
        covered_cols = [col_at[c] for c in cols if min_col <= c <= max_col]
        budget.fill(len(covered_rows) * len(covered_cols))
        for r in covered_rows:
            for c in covered_cols:
                grid[r][c] = value
        if min_row == top:  # a header cell merged across columns needs the row below to name them
            spanned = sum(1 for r in rows if min_row <= r <= max_row)
            header_rows = max(header_rows, spanned + (len(covered_cols) > 1))
    from openpyxl.utils.cell import get_column_letter

    # Rows and columns keep the sheet's numbers: the cell of XFD2000 is cited as row 2000, column XFD.
    return table_from_grid(f"工作表“{title}”", grid, header_rows, row_numbers=rows,
                           column_names=[get_column_letter(c) for c in cols])


def csv_table(text: str, name: str, budget: Budget | None = None) -> Table | None:
    """Return the table of a CSV text (comma, semicolon or tab separated; the first row names the columns)."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t，")
    except csv.Error:
        dialect = csv.excel
    budget = budget or Budget()
    grid = []
    for row in csv.reader(io.StringIO(text), dialect):
        budget.fill(len(row))
        grid.append([" ".join(c.split()) for c in row])
    if len(grid) > MAX_TABLE_ROWS:
        raise ValueError(f"{name} 有 {len(grid)} 行，超过了 {MAX_TABLE_ROWS} 行的上限")
    return table_from_grid(f"表格“{name}”", grid)


def merged_header_rows(grid: list[list[str]]) -> int:
    """Header depth of a grid whose merged cells were repeated: 2 when the first row spans columns, else 1."""
    if len(grid) < 3:
        return 1
    first = [c for c in grid[0]]
    spans = any(a and a == b for a, b in zip(first, first[1:]))
    return 2 if spans else 1
