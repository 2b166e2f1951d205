"""Tables a PDF's text layer makes recoverable: ruled grids and clearly aligned unruled columns.

pdfplumber (over pdfminer.six) gives each character's box and the page's ruling lines, and finds
ruled tables from those lines. Unruled tables are found here, conservatively: a run of at least three
lines, each split by wide gaps (two character widths or more) into short cells that fall into the same
columns. Running text has no such gaps, and a two-column article has long cells with sentence
punctuation, so neither becomes a table; a page without tables is left to pypdf's text as before.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from rag.convert.tables import Table, merged_header_rows, table_from_grid

log = logging.getLogger(__name__)

MIN_ROWS = 3  # header and two rows: fewer aligned lines are a layout, not a table
GAP_EMS = 2.0  # white space between two cells of an unruled table, in character heights
MAX_CELL_CHARS = 24  # a longer stretch of text between gaps is prose set in columns
MEDIAN_CELL_CHARS = 12  # prose columns run ~20 characters a line; table cells are names and figures
# Finding tables costs ~10-60 ms a page here (pdfminer in pure Python); past this budget the
# remaining pages keep their running text, and the note says so.
TABLE_SECONDS = 60.0
_PROSE_MARK = re.compile(r"[。！？；，!?]")  # "1,234" keeps its ASCII comma: figures are cells
_CAPTION = re.compile(r"^(表|Table)\s*[\d一二三四五六七八九十]+", re.I)


@dataclass(frozen=True)
class TablePages:
    """The pages that hold tables, each as its blocks in reading order (text or `Table`); and what was left out."""

    pages: dict[int, list[str | Table]]
    unread_from: int | None = None  # 0-based page where the time budget ran out


def find_tables(data: bytes, skip: set[int], seconds: float | None = None) -> TablePages:
    """Return every page of a PDF as blocks when one of them holds a table, else none (pages in `skip` not looked at).

    Pages are read until `seconds` (default `TABLE_SECONDS`) have passed; the rest keep their running text.
    """
    seconds = TABLE_SECONDS if seconds is None else seconds
    try:
        import pdfplumber
    except ImportError as exc:
        raise RuntimeError("识别 PDF 中的表格需要 pdfplumber：pip install pdfplumber") from exc
    import io

    pages: dict[int, list[str | Table]] = {}
    began = time.perf_counter()
    count = 0
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for number, page in enumerate(pdf.pages):
            if number in skip:
                continue
            if time.perf_counter() - began > seconds:
                return TablePages(pages, number)
            try:
                blocks = page_blocks(page, count)
            except Exception as exc:  # one odd page keeps its running text; the others still count
                log.warning("tables of page %d not read: %s", number + 1, exc)
                blocks = None
            finally:
                page.flush_cache()
            if blocks is not None:
                pages[number] = blocks
                count += sum(isinstance(b, Table) for b in blocks)
    # Either every page is laid out here or none: pypdf orders a page's lines as they were drawn,
    # pdfplumber top to bottom, and a page number found first on some pages and last on others is
    # no longer seen as the running footer it is.
    return TablePages(pages if count else {})


def page_blocks(page, tables_before: int = 0) -> list[str | Table]:
    """Return a pdfplumber page as text blocks and tables, top to bottom."""
    ruled = []
    for found in page.find_tables():
        grid = _ruled_grid(found)
        if len(grid) >= 2 and max(len(r) for r in grid) >= 2:
            ruled.append((found.bbox, grid))
    rest = page
    for bbox, _ in ruled:
        rest = rest.outside_bbox(bbox)
    lines = [line for line in rest.extract_text_lines(return_chars=True) if line["text"].strip()]
    unruled = _unruled(lines)
    # Everything placed by its top: text lines, ruled tables, and unruled runs of lines.
    items: list[tuple[float, str, object]] = [(bbox[1], "table", grid) for bbox, grid in ruled]
    in_unruled = {k for first, last, _ in unruled for k in range(first, last + 1)}
    items += [(lines[first]["top"], "table", grid) for first, _, grid in unruled]
    items += [(line["top"], "line", line["text"].strip()) for k, line in enumerate(lines) if k not in in_unruled]
    items.sort(key=lambda item: (item[0], item[1] == "line"))
    blocks: list[str | Table] = []
    text: list[str] = []
    for _, kind, value in items:
        if kind == "line":
            text.append(value)
            continue
        caption = text.pop() if text and _CAPTION.match(text[-1]) else ""
        if text:
            blocks.append("\n".join(text))
            text = []
        label = caption or f"表{tables_before + sum(isinstance(b, Table) for b in blocks) + 1}"
        table = table_from_grid(label, value, merged_header_rows(value))
        if table is not None:
            blocks.append(table)
    if text:
        blocks.append("\n".join(text))
    return blocks


def _ruled_grid(found) -> list[list[str]]:
    """Return a ruled table's cells; a merged cell's text is repeated over every position it covers."""
    rows = found.extract()
    cells = found.cells
    out = []
    for r, row in enumerate(rows):
        filled = []
        for c, value in enumerate(row):
            if value is None:
                value = _covering_text(found, cells, rows, r, c)
            filled.append(_cell_text(value or ""))
        out.append(filled)
    return [row for row in out if any(row)]


def _covering_text(found, cells, rows, r: int, c: int) -> str:
    # The grid position's centre lies inside the merged cell that covers it; that cell's text
    # stands at its top-left position.
    row_box, col_box = found.rows[r].bbox, found.columns[c].bbox
    x, y = (col_box[0] + col_box[2]) / 2, (row_box[1] + row_box[3]) / 2
    for x0, top, x1, bottom in cells:
        if x0 <= x <= x1 and top <= y <= bottom:
            for rr in range(len(rows)):
                for cc in range(len(rows[rr])):
                    rb, cb = found.rows[rr].bbox, found.columns[cc].bbox
                    if rows[rr][cc] is not None and abs(rb[1] - top) < 1 and abs(cb[0] - x0) < 1:
                        return rows[rr][cc]
    return ""


def _cell_text(value: str) -> str:
    """Join a cell's wrapped lines: no space between Chinese characters, one between words."""
    parts = [p.strip() for p in value.split("\n") if p.strip()]
    out = ""
    for part in parts:
        if out and not (_wide(out[-1]) or _wide(part[0])):
            out += " "
        out += part
    return out


def _wide(ch: str) -> bool:
    return ord(ch) >= 0x2E80


def _segments(line: dict) -> list[tuple[float, float, str]]:
    """Return a text line cut at wide gaps: (x0, x1, text) for each stretch of close characters."""
    every = line["chars"]
    chars = [c for c in every if c["text"].strip()]
    if not chars:
        return []
    size = sorted(c["bottom"] - c["top"] for c in chars)[len(chars) // 2] or 1.0
    out, start = [], 0
    for k in range(1, len(chars) + 1):
        if k == len(chars) or chars[k]["x0"] - chars[k - 1]["x1"] > GAP_EMS * size:
            x0, x1 = chars[start]["x0"], chars[k - 1]["x1"]
            # The stretch's own spaces ("25 km/h") are kept; those of the gap are not.
            text = "".join(c["text"] for c in every if x0 <= c["x0"] and c["x1"] <= x1 + 0.01)
            out.append((x0, x1, " ".join(text.split())))
            start = k
    return out


def _unruled(lines: list[dict]) -> list[tuple[int, int, list[list[str]]]]:
    """Return (first line, last line, grid) for each run of lines that reads as an unruled table."""
    segmented = [_segments(line) for line in lines]
    found = []
    k = 0
    while k < len(lines):
        end = k
        while end < len(lines) and len(segmented[end]) >= 2 and _follows(lines, end, k):
            end += 1
        if end - k >= MIN_ROWS:
            grid = _aligned_grid(segmented[k:end])
            if grid is not None:
                found.append((k, end - 1, grid))
                k = end
                continue
        k = max(end, k + 1)
    return found


def _follows(lines: list[dict], k: int, first: int) -> bool:
    """True when line k continues the run begun at `first` (no more than two line heights below the last)."""
    if k == first:
        return True
    height = max(lines[k - 1]["bottom"] - lines[k - 1]["top"], 1.0)
    return lines[k]["top"] - lines[k - 1]["bottom"] <= 2 * height


def _aligned_grid(rows: list[list[tuple[float, float, str]]]) -> list[list[str]] | None:
    """Return the grid of aligned lines, or None when their cells are not columns of short values."""
    cells = [text for row in rows for _, _, text in row]
    if any(len(text) > MAX_CELL_CHARS or _PROSE_MARK.search(text) for text in cells):
        return None
    if sorted(len(text) for text in cells)[len(cells) // 2] > MEDIAN_CELL_CHARS:
        return None
    # Columns: the x-ranges of all cells merged where they overlap. A cell overlapping two columns
    # merges them, so a table whose lines disagree collapses to one column and is refused.
    spans = sorted((x0, x1) for row in rows for x0, x1, _ in row)
    columns: list[list[float]] = []
    for x0, x1 in spans:
        if columns and x0 <= columns[-1][1]:
            columns[-1][1] = max(columns[-1][1], x1)
        else:
            columns.append([x0, x1])
    if len(columns) < 2:
        return None
    grid = []
    for row in rows:
        out = [""] * len(columns)
        for x0, x1, text in row:
            c = next(i for i, (a, b) in enumerate(columns) if a <= x0 <= b)
            if out[c]:
                return None  # two cells of one line in one column: not a grid
            out[c] = text
        grid.append(out)
    if sum(1 for c in grid[0] if c) < len(columns):
        return None  # the header names every column
    return grid
