"""The page's HTML: chat messages with clickable [n] citations, the sources panel, the whole-article view.

Safety: nothing from a document, question or answer reaches the page unescaped. Chat messages go
through `md_text` (HTML-escaped, and Markdown punctuation turned into character references, so
Markdown renders them as the literal characters); HTML panels go through `esc`. The only markup on
the page is what this module writes around that text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.app.session import RESTORED_NOTE, Focus, Turn
from rag.convert.ocr import LOW_CONFIDENCE
from rag.retrieve import QuestionError, check_question
from rag.types import Answer, Citation, Document, Hit


# --- escaping ----------------------------------------------------------------------------------

# Characters Markdown (or the template engines of gr.HTML) could act on, written as references.
_MD_REFS = {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#+-.!|~>$:/=^%@"}
_MD_REFS.update({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})
_HTML_REFS = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
              "{": "&#123;", "}": "&#125;", "$": "&#36;", "`": "&#96;"}


def esc(text: str) -> str:
    """Return `text` safe inside HTML elements and attributes (also inert in gr.HTML templates)."""
    return "".join(_HTML_REFS.get(c, c) for c in str(text))


def md_text(text: str) -> str:
    """Return `text` for a Markdown chat message: shown literally, never parsed as HTML or Markdown."""
    lines = (line.strip() for line in str(text).replace("\r", "").split("\n"))
    return "\n".join("".join(_MD_REFS.get(c, c) for c in line) for line in lines)


# --- rendering ---------------------------------------------------------------------------------

MARKER = re.compile(r"\[(\d+)\]")


def _key(turn: int, item: int | str) -> str:
    # The chat's sanitizer drops data-* attributes but keeps classes, so the key travels as a class.
    return f"cite-key-{turn}-{item}"


def answer_message(answer: Answer, turn: int) -> str:
    """Return the chat message of an answer: escaped text, clickable [n] markers, and notes."""
    known = {c.n for c in answer.citations}
    titles = {c.n: c.title or c.file for c in answer.citations}
    parts, last = [], 0
    if answer.short and answer.text.startswith(answer.short + "\n"):
        # The reader's short answer leads, in bold; the quoted sentence follows on its own line.
        parts.append(f'<strong class="short-answer">{md_text(answer.short)}</strong><br>')
        last = len(answer.short) + 1
    for match in MARKER.finditer(answer.text):
        parts.append(md_text(answer.text[last : match.start()]))
        n = int(match.group(1))
        if n in known:
            label = esc(f"引用 {n}：{titles[n]}")
            parts.append(f'<span class="cite {_key(turn, n)}" role="button" tabindex="0" aria-label="{label}" '
                         f'title="{label}">[{n}]</span>')
        else:
            parts.append(md_text(match.group(0)))
        last = match.end()
    parts.append(md_text(answer.text[last:]))
    text = "".join(parts)
    notes = []
    if answer.abstained and answer.passages:
        notes.append("右侧列出了可能相关的段落，供参考。")
    if answer.unsupported:
        notes.append("以下句子在资料中找不到依据：" + "；".join(answer.unsupported))
    notes.extend(page_note(note) for note in answer.notes)
    for note in notes:
        text += f'\n\n<span class="note">{md_text(note)}</span>'
    return text


def resolved_question(turn: Turn) -> str:
    """Return how a follow-up was understood ("模力高地的面积呢？"), or "" when it was taken as asked."""
    resolved = turn.answer.resolved_question.strip() if turn.answer is not None else ""
    return resolved if resolved and resolved != turn.question.strip() else ""


def resolved_note(turn: Turn) -> str:
    """Return the line above an answer that says how its follow-up question was understood."""
    resolved = resolved_question(turn)
    return f'<span class="note resolved">理解为：{md_text(resolved)}</span>\n\n' if resolved else ""


# The pipeline's notes are English (the CLI's language); the page shows them in Chinese.
_NOTES_ZH = (
    (re.compile(r"no LLM is configured .*; extractive answer shown"), "未配置大模型（RAG_LLM_BASE_URL、RAG_LLM_MODEL），显示抽取式回答"),
    (re.compile(r"the LLM could not answer \((.*)\); extractive answer shown", re.S), r"大模型无法回答（\1），显示抽取式回答"),
    (re.compile(r"the LLM is busy with (\d+) other questions; extractive answer shown"), r"大模型正在回答另外 \1 个问题，显示抽取式回答"),
    (re.compile(r"removed citation markers that name no retrieved passage: (.*)", re.S), r"已删除不对应任何检索段落的引用标记：\1"),
    (re.compile(r"“(.*)” states (.*), which the cited passages do not contain", re.S), r"“\1”提到的 \2 在所引段落中找不到"),
    (re.compile(r"(\d+) sentence\(s\) lack a supporting citation"), r"有 \1 句没有引用支持"),
    (re.compile(r"limited to the first (\d+) of (\d+) questions"), r"只评了 \2 题中的前 \1 题"),
)


def page_note(note: str) -> str:
    """Return a note of the answer pipeline in Chinese, for the page (unknown ones unchanged)."""
    for pattern, chinese in _NOTES_ZH:
        if pattern.fullmatch(note):
            return pattern.sub(chinese, note)
    return note


def question_problem(question: str) -> str:
    """Return why the page cannot take `question`, in Chinese (what retrieve.check_question refuses), or ""."""
    try:
        check_question(question)
    except QuestionError as exc:
        return exc.chinese
    return ""


def streaming_message(text: str) -> str:
    """Return a partial answer as a chat message (markers shown, not yet clickable)."""
    parts = MARKER.split(text)  # text, number, text, number, …, text
    return "".join(md_text(p) if i % 2 == 0 else f'<span class="cite pending">[{p}]</span>' for i, p in enumerate(parts))


def chat_messages(turns: Sequence[Turn], pending: tuple[str, str] | None = None) -> list[dict]:
    """Return the Chatbot messages of a conversation, plus a question being answered."""
    messages: list[dict] = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": md_text(turn.question)})
        if turn.answer is not None:
            content = resolved_note(turn) + answer_message(turn.answer, i)
        elif turn.restored:
            note = turn.restored_note or RESTORED_NOTE
            content = md_text(turn.restored) + f'\n\n<span class="note">{md_text(note)}</span>'
        else:
            content = f'<span class="note error">{md_text(turn.error)}</span>'
        messages.append({"role": "assistant", "content": content})
    if pending is not None:
        question, partial = pending
        messages.append({"role": "user", "content": md_text(question)})
        messages.append({"role": "assistant", "content": streaming_message(partial) if partial else "…"})
    return messages


def _meta(title: str, date: str | None, file: str, location: str = "") -> str:
    bits = [f'<span class="doc-title">{esc(title)}</span>']
    if date:
        bits.append(f'<span class="doc-date">{esc(date)}</span>')
    bits.append(f'<span class="doc-file">{esc(file)}</span>')
    if location:  # 第3页, 工作表“产量” 第4行: where in the source file (issue 15)
        bits.append(f'<span class="doc-location">{esc(location)}</span>')
    return '<div class="doc-meta">' + "".join(bits) + "</div>"


def _highlight(text: str, start: int, end: int, mark_id: str = "", inner: tuple[int, int] | None = None,
               low: Sequence[tuple[int, int, float]] = ()) -> str:
    """Return `text` escaped with [start, end) marked, and inside it the `inner` span (the short answer) in bold.

    `low` spans (OCR lines read with low confidence) are wrapped so the page can show them as uncertain.
    """
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    ident = f' id="{mark_id}"' if mark_id else ""

    def piece(a: int, b: int) -> str:
        return _esc_low(text, a, b, low) if low else esc(text[a:b])

    body = piece(start, end)
    if inner is not None and start <= inner[0] < inner[1] <= end:
        a, b = inner
        body = f'{piece(start, a)}<strong class="answer-span">{piece(a, b)}</strong>{piece(b, end)}'
    return f"{piece(0, start)}<mark{ident}>{body}</mark>{piece(end, len(text))}"


def _esc_low(text: str, a: int, b: int, low: Sequence[tuple[int, int, float]]) -> str:
    out, pos = [], a
    for s, e, confidence in low:
        s, e = max(s, a), min(e, b)
        if s >= e or s < pos:
            continue
        out.append(esc(text[pos:s]))
        out.append(f'<span class="ocr-low" title="OCR 识别置信度 {confidence:.2f}，可能有误">{esc(text[s:e])}</span>')
        pos = e
    out.append(esc(text[pos:b]))
    return "".join(out)


def _chunk_of(answer: Answer, citation: Citation) -> Hit | None:
    return next((h for h in answer.passages if h.chunk.id == citation.chunk_id), None)


def sources_overview(turn: Turn, index: int) -> str:
    """Return the sources panel after an answer: its citations, or the possibly related passages."""
    answer = turn.answer
    if answer is None:
        return sources_placeholder()
    if answer.citations:
        items = [_citation_card(index, c) for c in answer.citations]
        return _panel("本回答的出处", "点击回答中的 [n] 或下面的条目，查看原文段落。", items)
    if answer.passages:
        items = [_passage_card(index, h, turn.documents.get(h.chunk.doc_id)) for h in answer.passages[:RELATED_CARDS]]
        return _panel("可能相关的段落", "资料里没有找到确切答案，这些段落与问题最接近。", items)
    return _panel("出处", "没有检索到相关段落。", [])


def sources_placeholder(message: str = "提问后，回答引用的原文会显示在这里。") -> str:
    """Return the empty sources panel."""
    return _panel("出处", message, [])


def _panel(title: str, hint: str, items: Sequence[str]) -> str:
    body = "".join(items)
    return f'<div class="sources"><div class="sources-head">{esc(title)}</div><p class="hint">{esc(hint)}</p>{body}</div>'


def _citation_card(turn: int, c: Citation) -> str:
    return (f'<div class="card clickable {_key(turn, c.n)}" role="button" tabindex="0">'
            f'<span class="badge">{c.n}</span>{_meta(c.title, c.date, c.file, c.location)}'
            f'<div class="sentence">{esc(c.sentence)}</div></div>')


RELATED_CARDS = 3  # possibly related passages listed after an abstention


def _passage_card(turn: int, hit: Hit, document: Document | None) -> str:
    text = hit.chunk.text
    snippet = text if len(text) <= 140 else text[:140] + "…（点击查看完整段落）"
    meta = _meta(document.title, document.date, document.file) if document else _meta(hit.chunk.doc_id, None, "")
    return (f'<div class="card clickable {_key(turn, f"p{hit.rank}")}" role="button" tabindex="0">'
            f'<span class="badge muted">{hit.rank}</span>{meta}<div class="sentence">{esc(snippet)}</div></div>')


def focused_citation(turn: Turn, index: int, n: int) -> tuple[str, Focus | None]:
    """Return the sources panel opened on citation `n` (its passage, the sentence highlighted) and the focus."""
    answer = turn.answer
    citation = next((c for c in answer.citations if c.n == n), None) if answer else None
    if citation is None:
        return sources_placeholder("找不到这个出处。"), None
    hit = _chunk_of(answer, citation)
    if hit is not None:
        local = citation.start - hit.chunk.start
        inner = None
        if citation.answer_start is not None:
            inner = (citation.answer_start - hit.chunk.start, citation.answer_end - hit.chunk.start)
        passage = _highlight(hit.chunk.text, local, local + (citation.end - citation.start), "focus-mark", inner)
    else:
        passage = f"<mark>{esc(citation.sentence)}</mark>"
    card = (f'<div class="card focused"><span class="badge">{n}</span>'
            f'{_meta(citation.title, citation.date, citation.file, citation.location)}'
            f'<div class="passage">{passage}</div></div>')
    others = [_citation_card(index, c) for c in answer.citations if c.n != n]
    html_ = _panel(f"出处 [{n}]", "高亮的是支持这句回答的原文。", [card])
    if others:
        html_ += _panel("本回答的其他出处", "", others)
    document = turn.documents.get(citation.doc_id)
    answer_span = None
    if citation.answer_orig_start is not None:
        answer_span = (citation.answer_orig_start, citation.answer_orig_end)
    focus = Focus(document, citation.orig_start, citation.orig_end, answer_span) if document else None
    return html_, focus


def focused_passage(turn: Turn, rank: int, turn_index: int = 0) -> tuple[str, Focus | None]:
    """Return the sources panel opened on retrieved passage `rank` (for abstained answers), the others listed below."""
    answer = turn.answer
    hit = next((h for h in answer.passages if h.rank == rank), None) if answer else None
    if hit is None:
        return sources_placeholder("找不到这个段落。"), None
    document = turn.documents.get(hit.chunk.doc_id)
    title, date, file = (document.title, document.date, document.file) if document else (hit.chunk.doc_id, None, "")
    card = (f'<div class="card focused"><span class="badge muted">{rank}</span>{_meta(title, date, file)}'
            f'<div class="passage"><mark id="focus-mark">{esc(hit.chunk.text)}</mark></div></div>')
    focus = Focus(document, hit.chunk.orig_start, hit.chunk.orig_end) if document else None
    html_ = _panel(f"可能相关的段落 {rank}", "资料中没有确切答案；这是检索到的段落之一，完整显示。", [card])
    # The other related passages stay listed, so opening one never loses the rest.
    others = [_passage_card(turn_index, h, turn.documents.get(h.chunk.doc_id))
              for h in answer.passages[:RELATED_CARDS] if h.rank != rank]
    if others:
        html_ += _panel("其他可能相关的段落", "点击条目可完整查看。", others)
    return html_, focus


def article_view(focus: Focus) -> str:
    """Return the whole original file with the focused span highlighted in place."""
    doc = focus.document
    low = [(r.start, r.end, r.confidence) for r in getattr(doc, "regions", ())
           if r.kind == "ocr" and r.confidence is not None and r.confidence < LOW_CONFIDENCE]
    body = _highlight(doc.original, focus.orig_start, focus.orig_end, "article-mark", focus.answer, low)
    note = f'<p class="note source-gone">{esc(focus.note)}</p>' if focus.note else ""
    return (f'<div class="article-box"><div class="sources-head">全文</div>{note}{_meta(doc.title, doc.date, doc.file)}'
            f'<div class="article">{body}</div></div>')


def copy_text(turn: Turn) -> str:
    """Return the plain text copied by 复制回答: the answer and its numbered sources."""
    if turn.answer is None:
        return turn.error or turn.restored
    lines = [turn.answer.text]
    if turn.answer.citations:
        lines.append("")
        lines.extend(f"[{c.n}] {c.title}（{c.file}）：{c.sentence}" for c in turn.answer.citations)
    return "\n".join(lines)
