"""Repair PDF-extraction damage while keeping a map from every cleaned character to the original.

Repairs: hard-wrapped lines joined, doubled runs from two-column extraction collapsed, stray
spaces inside Chinese text dropped. Paragraphs (and headings, captions) stay on lines of their own
so they never glue two sentences together.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text import is_cjk

_SPACES = " \t\r\u3000\u00a0\u2002\u2003\u2009\u200b\ufeff"
_SENTENCE_FINAL = "。！？!?；;…"
_CLOSERS = "”’」』）)]】》"
_OPENS_LIST = "：:—"
_CJK_PUNCT = "，。、；：？！“”‘’（）《》【】「」『』…—·"
_MAX_DOUBLED = 60
_SHORT_LINE = 40


@dataclass
class _Line:
    chars: list[str]
    offsets: list[int]
    newline: int  # offset of the line break that ends it in the original
    last_width: float = 0.0  # width of the last physical line joined into this one

    @property
    def text(self) -> str:
        return "".join(self.chars)

    @property
    def width(self) -> float:
        # Latin letters, digits and spaces take half a column in typeset Chinese text.
        return sum(0.5 if c.isascii() else 1.0 for c in self.chars)


def clean(original: str, drop: Sequence[tuple[int, int]] = ()) -> tuple[str, list[int]]:
    """Return (cleaned text, offsets) where offsets[i] is the original offset of cleaned char i.

    Lines starting inside a `drop` span of the original (running headers and footers) are left out;
    the offsets of everything kept still point into `original`.
    """
    lines = _lines(original)
    if drop:
        starts = {s for s, _ in drop}
        pos = 0
        for k, raw in enumerate(original.split("\n")):
            if pos in starts:
                lines[k] = None
            pos += len(raw) + 1
    for line in lines:
        if line is not None:
            _collapse_doubles(line)
    paragraphs = _join_wrapped([line for line in lines if line is not None and line.chars])
    chars: list[str] = []
    offsets: list[int] = []
    for i, para in enumerate(paragraphs):
        if i:
            chars.append("\n")
            offsets.append(paragraphs[i - 1].newline)
        chars.extend(para.chars)
        offsets.extend(para.offsets)
    return "".join(chars), offsets


def _lines(original: str) -> list[_Line | None]:
    """Split into lines with intra-line whitespace repaired; blank lines become None."""
    lines: list[_Line | None] = []
    pos = 0
    for raw in original.split("\n"):
        line = _fix_spaces(raw, pos)
        lines.append(line if line.chars else None)
        pos += len(raw) + 1
        if line.chars:
            line.newline = min(pos - 1, len(original) - 1)
    return lines


def _fix_spaces(raw: str, base: int) -> _Line:
    """Trim the line and keep a single space only where it separates words or phrases."""
    chars, offsets = [], []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch not in _SPACES:
            chars.append(ch)
            offsets.append(base + i)
            i += 1
            continue
        j = i
        while j < n and raw[j] in _SPACES:
            j += 1
        before = chars[-1] if chars else ""
        after = raw[j] if j < n else ""
        if before and after and _keeps_space(before, after):
            chars.append(" ")
            offsets.append(base + i)
        i = j
    return _Line(chars, offsets, newline=base + n)


def _keeps_space(before: str, after: str) -> bool:
    if before in _SENTENCE_FINAL or before in _CLOSERS:
        return True  # "…产品。 记者 柯俊彬 摄": what follows a finished sentence is set apart
    if before in _CJK_PUNCT or after in _CJK_PUNCT:
        return False
    # "6 月 9 日" is PDF spacing; "DeepSeek 与 RAG" and "数智赋能筑高地 创新驱动" are separators.
    if (before.isdigit() and is_cjk(after)) or (is_cjk(before) and after.isdigit()):
        return False
    return True


def _collapse_doubles(line: _Line) -> None:
    """Collapse runs printed twice in a row ("聚焦数智科技聚焦数智科技", "，，")."""
    text = line.text
    # Two or more doubled words on one line mean two-column extraction: then even one-character
    # doubles ("摄摄") are damage. Elsewhere only long runs and punctuation, so "一一" survives.
    damaged = _count_doubles(text, min_len=2) >= 2
    keep = []  # positions of the characters kept
    i, n = 0, len(text)
    while i < n:
        size = _doubled_at(text, i, 1, lambda run: _is_damage(run, damaged))
        keep.extend(range(i, i + max(size, 1)))
        i += 2 * size if size else 1
    line.chars = [line.chars[k] for k in keep]
    line.offsets = [line.offsets[k] for k in keep]


def _count_doubles(text: str, min_len: int) -> int:
    count, i, n = 0, 0, len(text)
    while i < n:
        size = _doubled_at(text, i, min_len, lambda run: any(is_cjk(c) for c in run))
        count += bool(size)
        i += 2 * size if size else 1
    return count


def _doubled_at(text: str, i: int, min_len: int, accept) -> int:
    """Return the longest size >= min_len of an accepted run at `i` printed twice in a row, else 0."""
    first = text[i]
    for size in range(min(_MAX_DOUBLED, (len(text) - i) // 2), min_len - 1, -1):
        # Comparing one character first skips nearly every size without slicing.
        if text[i + size] == first and text[i + size : i + 2 * size] == text[i : i + size] and accept(text[i : i + size]):
            return size
    return 0


def _is_damage(run: str, damaged_line: bool) -> bool:
    if not run.strip():
        return False
    if all(c in _CJK_PUNCT or c in ",.;:!?" for c in run):
        return run not in ("…", "—", ".")  # "……" and "——" are real punctuation
    if damaged_line:
        return True
    return len(run) >= 4 and any(is_cjk(c) for c in run)


def _ends_sentence(text: str) -> bool:
    stripped = text.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_FINAL


def _wrap_width(lines: list[_Line]) -> float | None:
    """Return the column width a hard-wrapped text was broken at, or None if it is not wrapped."""
    widths = [round(line.width) for line in lines]
    if len(widths) < 8:
        return None
    width, _ = Counter(widths).most_common(1)[0]
    near = sum(1 for w in widths if abs(w - width) <= 2)
    if width < 10 or near < 0.3 * len(widths):
        return None
    return float(width)


def _join_wrapped(lines: list[_Line]) -> list[_Line]:
    """Join lines broken inside a sentence; keep paragraph, heading and caption breaks."""
    wrap = _wrap_width(lines)
    out: list[_Line] = []
    physical: list[int] = []  # how many source lines each paragraph holds
    for line in lines:
        if out and _continues(out[-1], physical[-1], line, wrap):
            prev = out[-1]
            if _is_word_char(prev.chars[-1]) and _is_word_char(line.chars[0]):
                prev.chars.append(" ")
                prev.offsets.append(prev.newline)
            prev.chars.extend(line.chars)
            prev.offsets.extend(line.offsets)
            prev.newline = line.newline
            prev.last_width = line.width
            physical[-1] += 1
        else:
            out.append(_Line(list(line.chars), list(line.offsets), line.newline, line.width))
            physical.append(1)
    return out


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _continues(prev: _Line, lines_in_prev: int, line: _Line, wrap: float | None) -> bool:
    text = prev.text
    if _ends_sentence(text):
        return False
    if wrap is None:
        if text[-1] in _OPENS_LIST:
            return False
        if len(text) < _SHORT_LINE and not any(c in text for c in "，,、"):
            return False  # a heading, credit or caption
        # A long paragraph that stops mid-sentence goes on in the next long or sentence-ending
        # one; a short unpunctuated line between them is a caption or heading, left alone.
        return len(line.chars) >= _SHORT_LINE or _ends_sentence(line.text)
    tail = text[max(text.rfind(c) for c in _SENTENCE_FINAL + "）)") + 1 :]
    if tail[:1].isspace():
        return False  # "…产品。 记者 柯俊彬 摄": a credit set apart after a finished sentence
    if lines_in_prev == 1 and prev.width < 0.75 * wrap and not any(c in text for c in "，,。；;、"):
        return False  # a short line of its own with no inner punctuation: heading or label
    # A line filled to its column was broken by the layout; columns vary, so compare with the
    # next line too (a narrow box beside the text wraps at 12 characters, not 24).
    if prev.last_width > wrap * 1.2:
        return False  # wider than the column: a line of its own, not a wrapped one
    if lines_in_prev >= 2:
        return True  # a paragraph already wrapped once and still mid-sentence goes on
    return prev.last_width >= wrap - 2.5 or prev.last_width >= 0.7 * line.width


_PAGE_NUMBER = re.compile(r"\d+")
RUNNING_EDGE_LINES = 2  # lines looked at on each page's top and bottom


def running_lines(original: str, pages: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Return the original spans of lines repeated at the top or bottom of most pages (running headers, footers).

    Lines are compared with digits folded ("第 3 页" = "第 4 页"), position by position from each edge, so
    a page number or a header carrying a date counts as the same line. Needs three pages: on two, a
    document's title and its first header cannot be told apart.
    """
    if len(pages) < 3:
        return []
    seen: dict[tuple[str, int, str], list[tuple[int, int]]] = {}
    for start, end in pages:
        lines, pos = [], start
        for raw in original[start:end].split("\n"):
            if raw.strip():
                lines.append((pos, pos + len(raw), raw))
            pos += len(raw) + 1
        edges = [("top", i, line) for i, line in enumerate(lines[:RUNNING_EDGE_LINES])]
        edges += [("bottom", i, line) for i, line in enumerate(reversed(lines[-RUNNING_EDGE_LINES:]))]
        keys_here = set()
        for where, i, (s, e, raw) in edges:
            key = (where, i, _PAGE_NUMBER.sub("#", "".join(raw.split())))
            if key not in keys_here:
                keys_here.add(key)
                seen.setdefault(key, []).append((s, e))
    need = max(3, -(-len(pages) * 6 // 10))  # on at least 60 % of the pages
    spans = {span for key, found in seen.items() if len(found) >= need and len(key[2]) <= 80 for span in found}
    return sorted(spans)
