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

from rag.converted import TextBuilder

CELL_SEPARATOR = "："  # between a column's name and the row's value
ROW_SEPARATOR = "；"  # between the cells of a row
ROW_END = "。"
HEADER_JOIN = "·"  # 产量·2025年: the parts of a column named by merged header rows
MAX_TABLE_ROWS = 50_000


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


def table_from_grid(label: str, grid: list[list[str]], header_rows: int = 1, first_row: int = 1) -> Table | None:
    """Return the table of a filled grid (merged cells already repeated), its first `header_rows` rows naming columns."""
    grid = [row for row in grid if any(c.strip() for c in row)]
    if not grid:
        return None
    width = max(len(r) for r in grid)
    grid = [list(r) + [""] * (width - len(r)) for r in grid]
    if len(grid) == 1:  # a lone row has no header: its cells are the data ("载客量：120人")
        return Table(label, (), ((first_row, tuple(grid[0])),))
    header_rows = max(1, min(header_rows, len(grid) - 1))
    columns = []
    for col in range(width):
        parts = list(dict.fromkeys(grid[r][col].strip() for r in range(header_rows) if grid[r][col].strip()))
        columns.append(HEADER_JOIN.join(parts) or f"第{col + 1}列")
    rows = tuple((first_row + header_rows + k, tuple(r)) for k, r in enumerate(grid[header_rows:]))
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


# --- spreadsheets ------------------------------------------------------------------------------


def xlsx_tables(data: bytes) -> list[Table]:
    """Return one table per non-empty worksheet of an .xlsx file, with merged cells and cached formula values."""
    try:
        import openpyxl
    except ImportError as exc:
        raise RuntimeError("读取 .xlsx 需要 openpyxl：pip install openpyxl") from exc
    # Two views of one file: values as Excel last computed them, and which cells hold formulas.
    values = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    formulas = openpyxl.load_workbook(io.BytesIO(data), data_only=False)
    tables = []
    for sheet in values.worksheets:
        if sheet.max_row > MAX_TABLE_ROWS:
            raise ValueError(f"工作表“{sheet.title}”有 {sheet.max_row} 行，超过了 {MAX_TABLE_ROWS} 行的上限")
        raw = formulas[sheet.title]
        top, left = sheet.min_row, sheet.min_column
        grid, missing = [], 0
        for r, row in enumerate(sheet.iter_rows(min_row=top, max_row=sheet.max_row, min_col=left,
                                                max_col=sheet.max_column)):
            out = []
            for c, cell in enumerate(row):
                text = cell_text(cell.value, cell.number_format or "")
                if not text and isinstance(raw.cell(top + r, left + c).value, str) \
                        and str(raw.cell(top + r, left + c).value).startswith("="):
                    missing += 1  # a formula never computed (a file written by a program, not by Excel)
                out.append(text)
            grid.append(out)
        header_rows = 1
        for merged in sheet.merged_cells.ranges:
            value = grid[merged.min_row - top][merged.min_col - left] if grid else ""
            for r in range(merged.min_row, merged.max_row + 1):
                for c in range(merged.min_col, merged.max_col + 1):
                    grid[r - top][c - left] = value
            if merged.min_row == top:  # a header cell merged across columns needs the row below to name them
                header_rows = max(header_rows, merged.max_row - top + 1 + (merged.max_col > merged.min_col))
        table = table_from_grid(f"工作表“{sheet.title}”", grid, header_rows, first_row=top)
        if table is not None:
            tables.append(Table(table.label, table.columns, table.rows, missing))
    return tables


def csv_table(text: str, name: str) -> Table | None:
    """Return the table of a CSV text (comma, semicolon or tab separated; the first row names the columns)."""
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t，")
    except csv.Error:
        dialect = csv.excel
    grid = [[" ".join(c.split()) for c in row] for row in csv.reader(io.StringIO(text), dialect)]
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
