"""HTML pages: the main text (scripts, markup and navigation dropped), tables as row passages."""

from __future__ import annotations

import re

from rag.convert.limits import Budget, ConversionError
from rag.convert.result import Converted, TextBuilder
from rag.convert.tables import add_table, merged_header_rows, table_from_grid
from rag.load import DecodeError, decode


def html_text(data: bytes, name: str = "网页", progress=None) -> Converted:
    """Return the main text of an HTML page (scripts, markup and navigation dropped), its tables as row lines."""
    import html as htmllib

    import nh3
    import trafilatura

    try:
        page, _ = decode(data)
    except DecodeError as exc:
        raise ConversionError(f"{name} 不是可识别的文本：{exc}") from exc
    budget = Budget(name)
    try:
        page, grids, title, date = _plain_html(page, budget)
        text = trafilatura.extract(page, include_comments=False, include_tables=False) if page.strip() else None
        text = text or (trafilatura.extract(page, include_comments=False, include_tables=False, favor_recall=True)
                        if page.strip() else None)
        meta = trafilatura.extract_metadata(page) if page.strip() else None
    except ConversionError:
        raise
    except Exception as exc:  # see pdf_text
        raise ConversionError(f"无法解析 {name}（{type(exc).__name__}）") from exc
    if not text:
        # A page too small for boilerplate removal: keep all visible text (nh3 drops script/style bodies).
        text = htmllib.unescape(nh3.clean(page, tags=set()))
    lines = [line for line in text.strip().split("\n") if not _link_bar(line)]
    builder = TextBuilder(budget=budget)
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


def _plain_html(page: str, budget: Budget) -> tuple[str, list[tuple[str, list[list[str]]]], str, str | None]:
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
        grids.append((caption, _html_grid(table, budget)))
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


def _html_grid(table, budget: Budget) -> list[list[str]]:
    """Return a <table> as a grid of cell texts, cells spanning rows or columns repeated where they reach.

    Spans are clamped to the table's real extent (its rows, its widest row's cells): 3,000 cells with
    colspan=100 rowspan=100 once expanded to 4 GB.
    """
    grid: list[list[str]] = []
    pending: dict[tuple[int, int], str] = {}  # cells filled by a rowspan from above
    rows_found = table.xpath("./tr | ./thead/tr | ./tbody/tr | ./tfoot/tr")
    cells_found = [row.xpath("./td | ./th") for row in rows_found]
    width = max((len(cells) for cells in cells_found), default=0)
    for r, cells_of_row in enumerate(cells_found):
        out: list[str] = []
        col = 0
        for cell in cells_of_row:
            while (r, col) in pending:
                out.append(pending.pop((r, col)))
                col += 1
            text = " ".join(cell.text_content().split())
            cols = max(1, min(_span(cell.get("colspan")), width - col))
            rows = max(1, min(_span(cell.get("rowspan")), len(cells_found) - r))
            budget.fill(cols * rows)
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

