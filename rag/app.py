"""The chat page (`rag chat`): a Gradio app over the pipeline.

Tabs: 对话 (answers with clickable [n] citations and a sources panel; an LLM's answer streamed), 知识库 (list, upload,
delete, rebuild), 评测 (the gold-set evaluation). The answer function is also the `/ask` API, and the
knowledge base's list, upload and delete are `/documents`, `/add_document` and `/delete_document`.

Safety: nothing from a document, question or answer reaches the page unescaped. Chat messages go
through `md_text` (HTML-escaped, and Markdown punctuation turned into character references, so
Markdown renders them as the literal characters); HTML panels go through `esc`. The only markup on
the page is what this module writes around that text.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr
from gradio import FileData
from gradio.utils import get_upload_folder

from rag.answer import Answerer
from rag.reader.reader import Reader
from rag.config import MAX_PASSAGES, Settings, load_settings
from rag.freshness import FreshnessCheck
from rag.index import IndexProblem
from rag.convert.ocr import LOW_CONFIDENCE
from rag.kb import CONVERTED_SUFFIXES, MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, KnowledgeBase, UploadError, skipped_summary
from rag.llm import Discard
from rag.retrieve import QuestionError, check_question
from rag.types import Answer, AnswerMode, Citation, Document, Hit, Mode

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("assets")
DEFAULT_K = 5
MAX_K = 10
API_MAX_K = MAX_PASSAGES
# An LLM answer mostly waits on the network, up to its timeout. At most LLM_SLOTS run at once (one
# more gets the extractive answer at once, with a note), and every answer event admits that many
# more than the two extractive answers two cores serve well: waiting LLM calls can never take the
# places extractive questions need (with two slots, two slow LLM calls held /ask for a minute).
LLM_SLOTS = 2
ANSWER_SLOTS = 2 + LLM_SLOTS
# How often an open page checks the disk for a newer index or edited documents (a stat per file).
NOTICE_SECONDS = 15

# Questions about facts the seed articles state, checked to be answered (none is in eval/gold.jsonl).
# Only those the live index answers are shown, so another corpus falls back to its titles.
EXAMPLE_QUESTIONS = (
    "赛力斯的协同平台接入了多少家上下游企业？",
    "“疆算入渝”用什么技术构建算力网主干道？",
    "高校毕业生首次经营小微软信企业，创业担保贷款最高多少？",
    "重庆科技服务业增加值力争增长多少？",
)
MAX_EXAMPLES = 4

MODE_CHOICES = [("混合（推荐）", Mode.HYBRID.value), ("向量", Mode.DENSE.value), ("关键词 BM25", Mode.BM25.value)]
MODE_LABELS = {value: label for label, value in MODE_CHOICES}


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


def refusal(message: str) -> gr.Error:
    """Return the error for a request the app refuses (bad question, k, file): the caller sees the
    message, the server's terminal one log line instead of Gradio's 30-line traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False, title="无法处理")


# --- Gradio's upload folder -------------------------------------------------------------------


def in_upload_folder(path: str | Path, upload_dir: Path) -> bool:
    """True when `path` (symlinks and `..` resolved) lies inside Gradio's upload folder."""
    try:
        return Path(upload_dir).resolve() in Path(path).resolve().parents
    except OSError:
        return False


def discard_upload(path: str | Path, upload_dir: Path) -> bool:
    """Remove a file Gradio saved for an upload, and its folder when empty; return True if it was removed.

    Gradio keeps every uploaded file (`<upload_dir>/<hash>/<name>`) until its own cache cleanup, which
    this app does not enable: a refused upload would otherwise stay there for good, and an accepted one
    twice, once in the documents folder. Anything outside `upload_dir` is left alone.
    """
    path = Path(path)
    if not in_upload_folder(path, upload_dir) or not path.is_file():
        return False
    root, real = Path(upload_dir).resolve(), path.resolve()
    path.unlink(missing_ok=True)
    if real.parent != root:
        try:
            real.parent.rmdir()  # only when empty: another upload with the same content may still be there
        except OSError:
            pass
    return True


_GONE = "无法读取上传的文件（同时上传的相同文件可能已先处理完并清除了它），请重新上传"


def _saved_bytes(path: Path) -> bytes | None:
    """Return the bytes of a file Gradio saved for an upload, or None when it cannot be read.

    Gradio names saved uploads by content: an identical file sent from another page at the same
    moment shares the copy, which is removed once that upload has been handled.
    """
    try:
        return path.read_bytes()
    except OSError:
        return None


# --- session state -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One question of a conversation, its answer (or error) and the documents the answer points into."""

    question: str
    answer: Answer | None = None
    error: str = ""
    documents: dict[str, Document] = field(default_factory=dict)
    restored: str = ""  # the answer's text, for a turn restored from the browser's history without its sources
    restored_note: str = ""  # why its sources are not shown


@dataclass(frozen=True)
class Focus:
    """The passage open in the sources panel: a span of a document's original text."""

    document: Document
    orig_start: int
    orig_end: int
    answer: tuple[int, int] | None = None  # the short answer's span inside it, when there is one
    note: str = ""  # said above the text when the document was deleted or changed since the answer


# --- rendering ---------------------------------------------------------------------------------

_MARKER = re.compile(r"\[(\d+)\]")


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
    for match in _MARKER.finditer(answer.text):
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
    parts = _MARKER.split(text)  # text, number, text, number, …, text
    return "".join(md_text(p) if i % 2 == 0 else f'<span class="cite pending">[{p}]</span>' for i, p in enumerate(parts))


def chat_messages(turns: Sequence[Turn], pending: tuple[str, str] | None = None) -> list[dict]:
    """Return the Chatbot messages of a conversation, plus a question being answered."""
    messages: list[dict] = []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": md_text(turn.question)})
        if turn.answer is not None:
            content = resolved_note(turn) + answer_message(turn.answer, i)
        elif turn.restored:
            note = turn.restored_note or _RESTORED_NOTE
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


def answered_turn(question: str, answer: Answer, documents: dict[str, Document]) -> Turn:
    """Return the turn of an answer, keeping the documents its citations and passages point into."""
    wanted = {c.doc_id for c in answer.citations} | {h.chunk.doc_id for h in answer.passages}
    return Turn(question, answer, documents={d: documents[d] for d in wanted if d in documents})


# --- browser-side history -----------------------------------------------------------------------

HISTORY_KEY = "wenyu-conversations"
MAX_HISTORY = 20  # conversations kept in the browser (localStorage holds a few MB)
_RESTORED_NOTE = "（从本浏览器的历史恢复：出处未保存，点“重新回答”可重新查看）"
_CHANGED_NOTE = "（从本浏览器的历史恢复：文档已有变化，按现在的文档回答会不同，出处不再对应；点“重新回答”查看新的回答）"
_LLM_RESTORED_NOTE = "（从本浏览器的历史恢复：大模型的回答不会自动重算，出处未显示；点“重新回答”可重新查看）"
RESTORE_SECONDS = 5.0  # wall-clock bound on re-reading a restored conversation's sources
HISTORY_SECRET_FILE = ".browser-history-secret"


def history_secret(folder: Path) -> str | None:
    """Return the key the browser's history is encrypted with, kept in `folder` so a restart can still read it.

    Gradio makes a random key per server run otherwise, and every stored conversation is lost on restart.
    None (a key for this run only) when the folder cannot hold the file.
    """
    path = Path(folder) / HISTORY_SECRET_FILE
    try:
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) >= 32:
            return secret
    except (OSError, UnicodeDecodeError):
        pass
    import os
    import secrets

    secret = secrets.token_hex(32)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secret)
        os.replace(tmp, path)
        return secret
    except OSError:
        log.warning("cannot keep the history key in %s: conversations stay readable until this server stops", folder)
        return None


def history_record(conversation: str, turns: Sequence[Turn]) -> dict:
    """Return a conversation as the browser stores it: plain text only (questions, answers with their sources)."""
    stored = []
    for t in turns:
        item = {"question": t.question, "answer": copy_text(t)}
        if t.answer is not None:  # how it was asked, so its sources can be found again on restore
            item.update(resolved=resolved_question(t), answer_mode=t.answer.mode.value,
                        mode=t.answer.retrieval_mode.value, k=max(1, len(t.answer.passages)))
        stored.append(item)
    return {"id": conversation, "title": turns[0].question[:40] if turns else "", "saved": time.strftime("%m-%d %H:%M"),
            "turns": stored}


def restored_turns(record: dict) -> list[Turn]:
    """Return the turns of a stored conversation (answers as text; their sources are not kept)."""
    return [Turn(str(t.get("question", "")), restored=str(t.get("answer", "")) or "（无回答）")
            for t in record.get("turns", []) if isinstance(t, dict)]


def history_choices(history) -> list[tuple[str, str]]:
    """Return the history dropdown's (label, id) choices, newest first."""
    records = [r for r in (history or []) if isinstance(r, dict) and r.get("id")]
    return [(f"{r.get('saved', '')} · {r.get('title', '')}（{len(r.get('turns', []))} 问）", r["id"]) for r in records]


# --- the app -----------------------------------------------------------------------------------


class ChatApp:
    """The page's behaviour over one shared `KnowledgeBase`; `build()` returns the Gradio Blocks."""

    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None, gold_path: Path | None = None,
                 eval_dir: Path | None = None) -> None:
        self.kb = kb
        self.settings = settings or load_settings()
        self.gold_path = Path(gold_path) if gold_path else Path("eval/gold.jsonl")
        self.eval_dir = Path(eval_dir) if eval_dir else Path("eval/reports")
        self._llm_slots = threading.BoundedSemaphore(LLM_SLOTS)
        self.reader = Reader()  # one reader for every question: it loads its weights on first use
        # Where Gradio saves uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), read as gr.Blocks reads it.
        self.upload_dir = Path(get_upload_folder()).resolve()
        self.freshness = FreshnessCheck(kb.docs_dir, kb.index_dir)  # what changed on disk under the live index
        self._adopted: tuple[Path | None, str] = (None, "")  # the build switched to from disk, and the note

    def answerer(self) -> Answerer:
        """Return an answerer over the live index (cheap: it shares the loaded index and the reader)."""
        self._follow_disk()  # a build another process finished is answered from (checked every 2 s at most)
        return Answerer(self.kb.index, settings=self.settings, reader=self.reader)

    def warm(self) -> None:
        """Load the models a first question would wait for; a failure here is the first question's to report."""
        try:
            self.answerer().warm()
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation
            log.warning("warming the answerer failed: %s", exc)

    def _follow_disk(self):
        """Switch to a newer build on disk, if there is one; return the live index and how the disk differs."""
        index = self.kb.index
        state = self.freshness.check(index.path, index.manifest)
        if state.newer_build:
            adopted = self.kb.adopt_newer_build()
            if adopted is not None:
                index = adopted
                built = str(adopted.manifest.get("built_at", ""))[:19].replace("T", " ")
                self._adopted = (adopted.path, f"已换用磁盘上更新的索引（另一进程于 {built} UTC 建成）："
                                               f"{len(adopted.documents)} 篇文档，{len(adopted.chunks)} 个段落。")
                state = self.freshness.check(index.path, index.manifest, force=True)
        return self.kb.index, state

    # API ---------------------------------------------------------------------------------------

    def ask(self, question: str, mode: str = "hybrid", k: int = DEFAULT_K, answer_mode: str = "reader") -> dict:
        """Answer a question from the knowledge base; return the Answer as JSON (see Answer.to_dict)."""
        try:
            mode, answer_mode, k = _choice(Mode, mode, "mode"), _choice(AnswerMode, answer_mode, "answer_mode"), _k(k)
            answer = None
            for item in self._stream(self.answerer(), question, (), mode, k, answer_mode):
                if isinstance(item, Answer):
                    answer = item
            return answer.to_dict()
        except (QuestionError, ValueError) as exc:
            raise refusal(str(exc)) from exc

    def list_documents(self) -> list[dict]:
        """Return the knowledge base's documents: title, file, date, chunks, time added and note."""
        return [dataclasses.asdict(row) for row in self.kb.documents()]

    def add_document(self, file: FileData) -> dict:
        """Add one uploaded document and re-index; return its stored name and the new corpus size.

        A refused file (type, size, conversion limits, same name or text as a document) raises an
        error saying why, and changes nothing.
        """
        # gr.api hands the file over unprocessed, as the FileData dict the client sent.
        if not file:
            raise refusal("没有收到文件：请用 handle_file(路径) 传入要上传的文件")
        path = Path(file["path"] if isinstance(file, dict) else file.path)
        name = (file.get("orig_name") if isinstance(file, dict) else file.orig_name) or path.name
        # The path comes from the client as it sent it: only a file it uploaded to this server is read,
        # never another file of the machine ("/etc/passwd", the index, other users' documents).
        if not in_upload_folder(path, self.upload_dir):
            raise refusal(f"{name}：只接受先上传到本服务的文件（gradio_client 的 handle_file），不读取服务器上的其他路径")
        data = _saved_bytes(path)
        if data is None:
            raise refusal(f"{name}：{_GONE}")
        try:
            upload, report = self.kb.add(name, data)
        except UploadError as exc:
            raise refusal(str(exc)) from exc
        except Exception as exc:  # as on the page: the reason, not Gradio's generic error
            log.exception("adding %s failed", name)
            raise gr.Error(f"{name}：索引失败（{type(exc).__name__}: {exc}），知识库未改变", title="出错了") from exc
        finally:
            discard_upload(path, self.upload_dir)
        return {"file": upload.name, "source": upload.source, "converted": upload.converted,
                "documents": report.documents, "chunks": report.chunks, "embedded": report.embedded,
                "cached": report.cached, "seconds": round(report.seconds, 3)}

    def remove_document(self, file: str) -> dict:
        """Delete one document by its file name and re-index; return the new corpus size."""
        try:
            report = self.kb.delete(file)
        except UploadError as exc:
            raise refusal(str(exc)) from exc
        return {"file": file, "documents": report.documents, "chunks": report.chunks,
                "seconds": round(report.seconds, 3)}

    def _stream(self, answerer: Answerer, question: str, history: Sequence[str], mode, k: int,
                answer_mode) -> Iterator[str | Answer]:
        """Stream an answer; an LLM one only while an LLM slot is free, else the extractive one with a note."""
        if AnswerMode(answer_mode) is not AnswerMode.LLM or not answerer.llm_available:
            yield from answerer.stream(question, history, mode=mode, k=k, answer_mode=answer_mode)
            return
        if not self._llm_slots.acquire(blocking=False):
            note = f"the LLM is busy with {LLM_SLOTS} other questions; extractive answer shown"
            for item in answerer.stream(question, history, mode=mode, k=k, answer_mode=answerer.default_mode):
                yield replace(item, notes=item.notes + (note,)) if isinstance(item, Answer) else item
            return
        try:
            yield from answerer.stream(question, history, mode=mode, k=k, answer_mode=answer_mode)
        finally:
            self._llm_slots.release()

    # chat --------------------------------------------------------------------------------------

    def respond(self, question: str, turns: list[Turn], mode: str, k: float, answer_mode: str):
        """Stream the answer to `question`: yields (textbox, chat, turns, sources, copy text) updates."""
        question = (question or "").strip()
        if not question:
            gr.Warning("请先输入问题。", title="提示")
            yield gr.update(), gr.update(), turns, gr.update(), gr.update()
            return
        yield from self._answer(question, list(turns), mode, k, answer_mode)

    def retry(self, turns: list[Turn], mode: str, k: float, answer_mode: str):
        """Answer the last question again (with the current settings)."""
        if not turns:
            yield gr.update(), gr.update(), turns, gr.update(), gr.update()
            return
        yield from self._answer(turns[-1].question, list(turns[:-1]), mode, k, answer_mode)

    def _answer(self, question: str, turns: list[Turn], mode: str, k: float, answer_mode: str,
                literal: bool = False) -> Iterator[tuple]:
        yield "", chat_messages(turns, (question, "")), turns, sources_placeholder("正在检索……"), ""
        answerer = self.answerer()  # one index for the whole answer, even if the knowledge base changes meanwhile
        # Earlier questions as they were understood, so the topic carries over several follow-ups;
        # `literal` asks the question as typed, with no conversation.
        history = [] if literal else [resolved_question(t) or t.question for t in turns]
        partial, answer = "", None
        # Only an LLM's answer is worth streaming. The reader's and the sentence picker's are whole after
        # 10-60 ms, before their first piece: sent piece by piece they reached the page at once anyway.
        streamed = AnswerMode(answer_mode) is AnswerMode.LLM and answerer.llm_available
        try:
            for item in self._stream(answerer, question, history, mode, int(k), answer_mode):
                if isinstance(item, Answer):
                    answer = item
                elif isinstance(item, Discard):  # the LLM failed mid-answer: what it streamed is dropped
                    partial = ""
                elif streamed:
                    partial += item
                    yield gr.update(), chat_messages(turns, (question, partial)), turns, gr.update(), gr.update()
        except QuestionError as exc:
            turn = Turn(question, error=f"这个问题无法处理：{exc.chinese}")
        except Exception as exc:  # the page must survive any failure of one answer
            log.exception("answering %r failed", question)
            turn = Turn(question, error=f"回答时出错：{type(exc).__name__}: {exc}")
        else:
            turn = answered_turn(question, answer, answerer.index.documents)
        turns = turns + [turn]
        yield gr.update(), chat_messages(turns), turns, sources_overview(turn, len(turns) - 1), copy_text(turn)

    def ask_literal(self, turns: list[Turn], mode: str, k: float, answer_mode: str):
        """Answer the last question again as typed, without the conversation (the follow-up was misread)."""
        if not turns:
            yield gr.update(), gr.update(), turns, gr.update(), gr.update()
            return
        yield from self._answer(turns[-1].question, list(turns[:-1]), mode, k, answer_mode, literal=True)

    def follow_up_view(self, turns: list[Turn]):
        """Return the bar under the chat for the last answer's follow-up: how it was understood, or hidden."""
        resolved = resolved_question(turns[-1]) if turns else ""
        if not resolved:
            return gr.update(visible=False), ""
        return gr.update(visible=True), f"上一问“{md_text(turns[-1].question)}”理解为：**{md_text(resolved)}**"

    def after_answer(self, turns: list[Turn]):
        """Return the follow-up bar and the index notice, refreshed after an answer."""
        return (*self.follow_up_view(turns), *self.index_notice())

    def edit_resolved(self, turns: list[Turn]):
        """Put the last follow-up, as understood, into the question box for correcting."""
        resolved = resolved_question(turns[-1]) if turns else ""
        return resolved or gr.update()

    def clear(self):
        """Return an empty conversation."""
        return [], [], sources_placeholder(), "", None, gr.update(visible=False), gr.update(value="", visible=False)

    def remember(self, turns: list[Turn], conversation: str, history: list[dict] | None):
        """Store the conversation in the browser's history (newest first); return history, picker, conversation id."""
        history = list(history or [])
        if not turns:
            return history, gr.update(), conversation
        conversation = conversation or f"c{time.time_ns()}"
        history = [history_record(conversation, turns)] + [r for r in history if r.get("id") != conversation]
        history = history[:MAX_HISTORY]
        return history, gr.update(choices=history_choices(history), value=None), conversation

    def restore(self, choice: str | None, history: list[dict] | None):
        """Show a stored conversation again: yields chat, turns, sources, copy text, conversation id."""
        record = next((r for r in history or [] if isinstance(r, dict) and r.get("id") == choice), None)
        if record is None:
            gr.Warning("请先在下拉框中选择要恢复的对话。", title="提示")
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        turns = self.with_sources(record, restored_turns(record))
        last = copy_text(turns[-1]) if turns else ""
        if turns and all(t.answer is not None or t.error for t in turns):
            placeholder = "已恢复历史对话，出处已按现在的文档找回，点击 [n] 查看。"
        else:
            placeholder = "已恢复历史对话；没有出处的回答可点“重新回答”重新查看。"
        return chat_messages(turns), turns, sources_placeholder(placeholder), last, record["id"]

    def with_sources(self, record: dict, turns: list[Turn]) -> list[Turn]:
        """Return `turns` with their sources found again where the documents still give the same answer.

        The browser keeps text only. An offline answer is reproducible, so each one is asked again (as it
        was understood, with its settings); when the answer is the stored one, word for word, its
        citations are those it had. Otherwise the stored text stays, with a note that the documents
        changed. An LLM is never called for this. Bounded by RESTORE_SECONDS in all.
        """
        stored = [t for t in record.get("turns", []) if isinstance(t, dict)]
        if len(stored) != len(turns):
            return turns
        deadline = time.monotonic() + RESTORE_SECONDS
        try:
            answerer = self.answerer()
        except Exception:  # no usable index: the text is still worth showing
            log.exception("cannot find the sources of a restored conversation")
            return turns
        out: list[Turn] = []
        for turn, item in zip(turns, stored):
            if item.get("answer_mode") not in {m.value for m in AnswerMode}:
                out.append(turn)  # an error, or stored before sources could be found again
                continue
            if item["answer_mode"] == AnswerMode.LLM.value:
                out.append(dataclasses.replace(turn, restored_note=_LLM_RESTORED_NOTE))
                continue
            if time.monotonic() > deadline:
                out.append(turn)
                continue
            try:
                question = str(item.get("resolved") or turn.question)
                answer = answerer.run(question, (), mode=_choice(Mode, item.get("mode", "hybrid"), "mode"),
                                         k=_k(item.get("k", DEFAULT_K)), answer_mode=item["answer_mode"])
            except Exception:
                log.exception("re-answering restored question %r failed", turn.question)
                out.append(turn)
                continue
            answer = dataclasses.replace(answer, question=turn.question,
                                         resolved_question=question if item.get("resolved") else "")
            again = answered_turn(turn.question, answer, answerer.index.documents)
            if copy_text(again) == turn.restored:
                out.append(again)
            else:
                out.append(dataclasses.replace(turn, restored_note=_CHANGED_NOTE))
        return out

    def forget(self):
        """Clear the browser's history of conversations."""
        return [], gr.update(choices=[], value=None), "✓ 已清除本浏览器保存的历史对话"

    def open_source(self, key: str, turns: list[Turn]):
        """Open citation `cite-key-<turn>-<n>` (or retrieved passage `cite-key-<turn>-p<rank>`) in the sources panel."""
        match = re.fullmatch(r"cite-key-(\d+)-(p?)(\d+)", (key or "").strip())
        if not match or int(match.group(1)) >= len(turns):
            return gr.update(), None, gr.update(visible=False), gr.update(visible=False)
        turn_index, number = int(match.group(1)), int(match.group(3))
        turn = turns[turn_index]
        if match.group(2):
            panel, focus = focused_passage(turn, number, turn_index)
        else:
            panel, focus = focused_citation(turn, turn_index, number)
        if focus is not None:
            note = self.source_note(focus.document)
            if note:  # an old answer's source was deleted or edited since: say so above the passage
                panel = f'<p class="note source-gone">{esc(note)}</p>' + panel
                focus = replace(focus, note=note)
        return panel, focus, gr.update(visible=focus is not None), gr.update(value="", visible=False)

    def source_note(self, document: Document) -> str:
        """Return a note when `document` (as an answer saw it) was since deleted or changed, else ""."""
        live = next((d for d in self.kb.index.documents.values() if d.file == document.file), None)
        if live is None:
            return f"这篇文档（{document.file}）已从知识库删除：下面是回答时的原文，新的提问不会再引用它。"
        if live.sha256 != document.sha256:
            return f"这篇文档（{document.file}）在回答之后已修改：下面是回答时的版本，与现在的文件不同。"
        return ""

    def show_article(self, focus: Focus | None):
        """Show the whole original article of the focused passage, the span highlighted."""
        if focus is None:
            return gr.update(visible=False)
        return gr.update(value=article_view(focus), visible=True)

    # knowledge base ----------------------------------------------------------------------------

    def document_table(self) -> list[list]:
        """Return the rows of the document list."""
        return [[r.title, r.file, r.date or "", r.chunks, r.added, r.note] for r in self.kb.documents()]

    def _kb_views(self, message: str):
        files = [r.file for r in self.kb.documents()]
        return (self.document_table(), gr.update(choices=files, value=None), message, self.header())

    def upload(self, paths: list[str] | None, progress=gr.Progress()):
        """Validate, store and index uploaded files, one by one; report each."""
        if not paths:
            return gr.update(), gr.update(), "请先选择要上传的文件。", gr.update(), gr.update()
        lines = []
        for path in paths:
            path = Path(path)
            data = _saved_bytes(path)
            if data is None:
                lines.append(f"✗ {path.name}：{_GONE}")
                continue
            try:
                upload, report = self.kb.add(path.name, data, progress=_progress(progress))
            except UploadError as exc:
                lines.append(f"✗ {exc}")
                continue
            except Exception as exc:  # an unexpected failure of one file must not hide the others' results
                log.exception("adding %s failed", path.name)
                lines.append(f"✗ {path.name}：索引失败（{type(exc).__name__}: {exc}），知识库未改变")
                continue
            finally:  # stored in the documents folder, or refused: Gradio's copy is no longer needed
                discard_upload(path, self.upload_dir)
            how = "已转换并" if upload.converted else "已"  # kept as uploaded; its text is in the index's cache
            lines.append(f"✓ {upload.source} {how}加入知识库：新嵌入 {report.embedded} 段，复用缓存 {report.cached} 段，"
                         f"用时 {report.seconds:.1f} 秒")
        return self._kb_views(_status(lines)) + (None,)

    def delete(self, file: str | None, progress=gr.Progress()):
        """Delete one document and re-index."""
        if not file:  # nothing chosen, or the confirmation was cancelled
            return self._kb_views(_status(["未删除任何文档：请先在下拉框中选择要删除的文档并确认。"]))
        try:
            report = self.kb.delete(file, progress=_progress(progress))
        except UploadError as exc:
            return self._kb_views(_status([f"✗ {exc}"]))
        return self._kb_views(_status([f"✓ 已删除 {file}，索引已更新（{report.documents} 篇文档，{report.chunks} 个段落）"]))

    def rebuild(self, progress=gr.Progress()):
        """Re-index the documents folder (changed files only are embedded)."""
        try:
            report = self.kb.rebuild(progress=_progress(progress))
        except (FileNotFoundError, IndexProblem) as exc:
            return self._kb_views(_status([f"✗ 索引未重建，原索引仍在使用：{exc}"]))
        return self._kb_views(_status([
            f"✓ 索引已重建：{report.documents} 篇文档，{report.chunks} 个段落；新嵌入 {report.embedded} 段，"
            f"复用缓存 {report.cached} 段，用时 {report.seconds:.1f} 秒"
        ] + skipped_summary(report.skipped)))  # every file accounted for, as `rag index` does

    def header(self) -> str:
        """Return the page header: name, corpus size and model."""
        index = self.kb.index
        return (f'<div class="app-head"><div class="app-title">问渝 <span>· 有出处的中文问答</span></div>'
                f'<div class="app-sub">{len(index.documents)} 篇文档 · {len(index.chunks)} 个段落 · '
                f'向量模型 {esc(index.manifest["embedder"]["id"])} · 文档目录 {esc(str(self.kb.docs_dir))}</div></div>')

    def examples(self) -> list[str]:
        """Return example questions the live index answers: the curated list, else ones from document titles."""
        answerer = self.answerer()
        found = [q for q in EXAMPLE_QUESTIONS if not answerer.run(q).abstained]
        if not found:
            titles = [d.title for d in answerer.index.documents.values() if d.title]
            found = [q for q in (f"{t}讲了什么？" for t in titles[: 2 * MAX_EXAMPLES]) if not answerer.run(q).abstained]
        return found[:MAX_EXAMPLES]

    # evaluation --------------------------------------------------------------------------------

    def evaluation_available(self) -> bool:
        """True when the evaluation module is installed and the gold set exists."""
        try:
            import rag.evaluate  # noqa: F401
        except ImportError:
            return False
        return self.gold_path.exists()

    # layout ------------------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """Return the Gradio app."""
        answerer = self.answerer()
        llm = answerer.llm_available
        with gr.Blocks(title="问渝 · 有出处的中文问答", analytics_enabled=False) as demo:
            header = gr.HTML(self.header())
            with gr.Row(elem_id="index-notice", visible=False) as notice:
                notice_text = gr.Markdown("", elem_id="index-notice-text")
                update_index = gr.Button("更新索引", size="sm", variant="primary", elem_id="index-update", visible=False)
            self._notice_outputs = [notice, notice_text, update_index, header]
            turns = gr.State([])
            focus = gr.State(None)
            with gr.Tabs():
                with gr.Tab("对话", id="chat"):
                    self._chat_tab(turns, focus, llm, answerer)
                with gr.Tab("知识库", id="kb"):
                    table, choice = self._kb_tab(header)
                with gr.Tab("评测", id="eval"):
                    self._eval_tab()
            gr.api(self.ask, api_name="ask", concurrency_limit=ANSWER_SLOTS)
            # The knowledge tab's actions for programs (the load test uses them); changes take turns
            # with the tab's own buttons in the "kb" group.
            gr.api(self.list_documents, api_name="documents", concurrency_limit=ANSWER_SLOTS)
            gr.api(self.add_document, api_name="add_document", concurrency_id="kb", concurrency_limit=1)
            gr.api(self.remove_document, api_name="delete_document", concurrency_id="kb", concurrency_limit=1)
            # Values given at build time are the page's defaults; a page opened after a knowledge-base
            # change must show the documents as they are now.
            notice_views = {"fn": self.index_notice, "outputs": self._notice_outputs, "show_progress": "hidden",
                            "api_visibility": "private", "concurrency_id": "notice", "concurrency_limit": 1}
            demo.load(**notice_views).then(self.page_views, None, [header, table, choice], api_visibility="private")
            # A page left open notices another process's build or an edited document without a question.
            gr.Timer(NOTICE_SECONDS).tick(**notice_views)
            update_index.click(self.update_index, None, [*self._notice_outputs, table, choice], api_visibility="private",
                               concurrency_id="kb", concurrency_limit=1)
        return demo

    def index_notice(self):
        """Return the notice above the tabs: a newer build on disk (switched to) or changed documents.

        A build another process finished (`rag index`) is complete and checked when loaded, and it is
        what that user asked for: it is switched to at once. Edited or added files are only reported,
        with a button to update: a file may be half-saved, and an update costs the CPU while answering.
        """
        index, state = self._follow_disk()
        lines, offer_update = [], False
        adopted_path, adopted_message = self._adopted
        if adopted_path == index.path:
            lines.append(adopted_message)
        if self.kb.changing:
            lines.append("索引正在更新，完成后自动换用；在此之前，回答仍基于原索引。")
        elif state.documents_changed:
            parts = [f"{what} {'、'.join(names[:3])}{' 等' if len(names) > 3 else ''}"
                     for what, names in (("已修改", state.changed), ("新增", state.added), ("已移除", state.removed))
                     if names]
            lines.append(f"文档目录有改动，索引尚未更新（{'；'.join(parts)}）：回答仍基于原来的文档。"
                         "点“更新索引”重建（只嵌入改动的内容）。")
            offer_update = True
        text = "\n\n".join(md_text(line) for line in lines)
        return gr.update(visible=bool(lines)), text, gr.update(visible=offer_update), self.header()

    def update_index(self, progress=gr.Progress()):
        """Rebuild the index from the documents folder (the notice's button); return the notice and the KB views."""
        try:
            self.kb.rebuild(progress=_progress(progress))
        except (FileNotFoundError, IndexProblem) as exc:
            gr.Warning(f"索引未更新，原索引仍在使用：{exc}")
        table, choice, _, _ = self._kb_views("")
        return (*self.index_notice(), table, choice)

    def page_views(self):
        """Return the header, document table and delete choices for a newly opened page."""
        table, choice, _, header = self._kb_views("")
        return header, table, choice

    def _chat_tab(self, turns, focus, llm: bool, answerer: Answerer) -> None:
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                chatbot = gr.Chatbot(
                    value=[], label="对话", show_label=False, height=520, elem_id="chat",
                    buttons=[], latex_delimiters=[], sanitize_html=True, render_markdown=True,
                    feedback_options=None, placeholder=_PLACEHOLDER, group_consecutive_messages=False,
                )
                with gr.Row(elem_id="ask-row"):
                    question = gr.Textbox(placeholder="输入问题，按回车发送（Shift+回车换行）", show_label=False,
                                          lines=1, max_lines=4, scale=6, elem_id="question", autofocus=True)
                    send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="send")
                with gr.Row(elem_id="follow-up", visible=False) as follow_up:
                    follow_up_text = gr.Markdown("", elem_id="follow-up-text")
                    literal = gr.Button("按原话提问（不结合上文）", size="sm", elem_id="ask-literal")
                    edit = gr.Button("修改理解后再问", size="sm", elem_id="edit-resolved")
                with gr.Row(elem_id="chat-actions"):
                    retry = gr.Button("↻ 重新回答", size="sm", elem_id="retry")
                    copy = gr.Button("复制回答", size="sm", elem_id="copy")
                    clear = gr.Button("✕ 清空对话", size="sm", elem_id="clear")
                # Outside the accordion: a closed one does not mount its components, so nothing would be stored.
                history = gr.BrowserState([], storage_key=HISTORY_KEY, secret=history_secret(self.kb.index_dir))
                conversation = gr.State("")
                with gr.Accordion("历史对话（保存在本浏览器）", open=False, elem_id="history"):
                    with gr.Row():
                        picker = gr.Dropdown(choices=[], value=None, label="选择对话", scale=4, elem_id="history-choice")
                        restore = gr.Button("恢复", size="sm", scale=1, elem_id="history-restore")
                        forget = gr.Button("清除历史", size="sm", variant="stop", scale=1, elem_id="history-clear")
                    history_status = gr.Markdown("", elem_id="history-status")
                examples = self.examples()
                shown = None
                if examples:
                    shown = gr.Examples(examples=[[q] for q in examples], inputs=[question], label="试试这些问题",
                                        elem_id="examples")
                with gr.Accordion("检索与回答设置", open=False, elem_id="settings"):
                    mode = gr.Radio(MODE_CHOICES, value=Mode.HYBRID.value, label="检索方式")
                    k = gr.Slider(1, MAX_K, value=DEFAULT_K, step=1, label="检索段落数（top-k）")
                    answer_choices = [("阅读器（短答案＋原句）", AnswerMode.READER.value),
                                      ("抽取式（原句引用）", AnswerMode.EXTRACTIVE.value)]
                    if llm:
                        answer_choices.append((f"大模型生成（{answerer.settings.llm.model}）", AnswerMode.LLM.value))
                    answer_mode = gr.Radio(answer_choices, value=answerer.default_mode.value, label="回答方式")
                    if not llm:
                        gr.Markdown("未配置大模型：设置 `RAG_LLM_BASE_URL` 与 `RAG_LLM_MODEL` 后重启，即可选择生成式回答。",
                                    elem_classes=["hint"])
            with gr.Column(scale=2, min_width=320, elem_id="sources-col"):
                sources = gr.HTML(sources_placeholder(), elem_id="sources", js_on_load=_scroll_to_mark("nearest"))
                view_article = gr.Button("查看全文（原文中高亮）", size="sm", visible=False, elem_id="view-article")
                article = gr.HTML("", visible=False, elem_id="article", js_on_load=_scroll_to_mark("center"))
        cite_key = gr.Textbox(visible="hidden", elem_id="cite-key")
        cite_open = gr.Button("open", visible="hidden", elem_id="cite-open")
        copy_value = gr.Textbox(visible="hidden", elem_id="copy-text")

        settings = [mode, k, answer_mode]
        outputs = [question, chatbot, turns, sources, copy_value]
        hidden = {"api_visibility": "private"}
        follow_up_views = {"fn": self.after_answer, "inputs": [turns],
                           "outputs": [follow_up, follow_up_text, *self._notice_outputs], "show_progress": "hidden",
                           **hidden}
        answered = []
        for trigger in (question.submit, send.click):
            answered.append(trigger(self.respond, [question, turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS, **hidden).then(
                lambda: (gr.update(visible=False), gr.update(visible=False)), None, [view_article, article], **hidden
            ).then(**follow_up_views))
        if shown is not None:  # clicking an example asks it
            answered.append(shown.load_input_event.then(self.respond, [question, turns, *settings], outputs,
                                                        concurrency_limit=ANSWER_SLOTS, **hidden).then(**follow_up_views))
        answered.append(retry.click(self.retry, [turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS, **hidden).then(
            **follow_up_views))
        answered.append(literal.click(self.ask_literal, [turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS,
                                      **hidden).then(**follow_up_views))
        edit.click(self.edit_resolved, [turns], [question], show_progress="hidden", **hidden)
        chatbot.clear(self.clear, None, [chatbot, turns, sources, copy_value, focus, view_article, article], **hidden)
        clear.click(self.clear, None, [chatbot, turns, sources, copy_value, focus, view_article, article], **hidden)
        for trigger in (clear.click, chatbot.clear):
            trigger(lambda: gr.update(visible=False), None, [follow_up], **hidden)
        copy.click(None, [copy_value], None, js=_COPY_JS, **hidden)
        cite_open.click(self.open_source, [cite_key, turns], [sources, focus, view_article, article],
                        show_progress="hidden", **hidden)
        view_article.click(self.show_article, [focus], [article], show_progress="hidden", **hidden)
        # Browser-side history: every answered turn updates the conversation's record; 清空对话 starts a new one.
        saved = [history, picker, conversation]
        remember = {"fn": self.remember, "inputs": [turns, conversation, history], "outputs": saved,
                    "show_progress": "hidden", **hidden}
        for event in answered:
            event.then(**remember)
        for trigger in (clear.click, chatbot.clear):
            trigger(lambda: "", None, [conversation], **hidden)
        restore.click(self.restore, [picker, history], [chatbot, turns, sources, copy_value, conversation], **hidden)
        forget.click(self.forget, None, [history, picker, history_status], **hidden)
        gr.context.Context.root_block.load(lambda h: gr.update(choices=history_choices(h), value=None), [history],
                                           [picker], **hidden)

    def _kb_tab(self, header) -> tuple[gr.Dataframe, gr.Dropdown]:
        convert = "、".join(CONVERTED_SUFFIXES)
        gr.Markdown(
            f"文档保存在 `{self.kb.docs_dir}`。可上传 {'、'.join(UPLOAD_SUFFIXES)}，单个文件不超过 "
            f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB；{convert} 保留原文件，提取的文字用于检索。"
            "上传或删除后索引自动更新，只有新内容需要嵌入。",
            elem_classes=["hint"],
        )
        table = gr.Dataframe(
            value=self.document_table(), headers=["标题", "文件", "日期", "段落数", "添加时间", "备注"],
            datatype=["str", "str", "str", "number", "str", "str"], interactive=False, wrap=True,
            label="文档列表", elem_id="doc-table",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # No file_types: Gradio's own check refuses in English ("Invalid file type"); KnowledgeBase.add says why in Chinese.
                files = gr.File(label="上传文档", file_count="multiple", type="filepath", elem_id="upload")
                upload = gr.Button("上传并更新索引", variant="primary", elem_id="upload-button")
            with gr.Column(scale=2):
                choice = gr.Dropdown(choices=[r[1] for r in self.document_table()], label="删除文档",
                                     value=None, elem_id="delete-choice")
                delete = gr.Button("删除所选文档", variant="stop", elem_id="delete-button")
                rebuild = gr.Button("重建索引", elem_id="rebuild-button")
        status = gr.Markdown("", elem_id="kb-status")
        hidden = {"api_visibility": "private", "concurrency_id": "kb", "concurrency_limit": 1}
        views = [table, choice, status, header]
        # After a change of ours the notice about the disk is out of date (a switch it reported, files it listed).
        notice = {"fn": self.index_notice, "outputs": self._notice_outputs, "show_progress": "hidden",
                  "api_visibility": "private"}
        upload.click(self.upload, [files], views + [files], **hidden).then(**notice)
        delete.click(self.delete, [choice], views, js=_CONFIRM_DELETE_JS, **hidden).then(**notice)
        rebuild.click(self.rebuild, None, views, **hidden).then(**notice)
        return table, choice

    def _eval_tab(self) -> None:
        if not self.evaluation_available():
            gr.Markdown(f"评测不可用：需要评测模块 `rag.evaluate` 和金标准问题集 `{self.gold_path}`。", elem_classes=["hint"])
            return
        gr.Markdown(
            f"用金标准问题集 `{self.gold_path}` 评测当前知识库：检索（Recall、MRR、nDCG）、回答（包含率、F1）、"
            f"引用（精确率、召回率）与拒答。报告保存在 `{self.eval_dir}`。"
            "用时取决于题数、配置数和机器负载（首次运行还要加载模型），完成后显示实测用时，每题平均用时见汇总表。",
            elem_classes=["hint"],
        )
        with gr.Row():
            modes = gr.CheckboxGroup(MODE_CHOICES, value=[Mode.HYBRID.value], label="检索方式")
            answer_choices = [("阅读器", AnswerMode.READER.value), ("抽取式", AnswerMode.EXTRACTIVE.value)]
            if self.answerer().llm_available:
                answer_choices.append((f"大模型（{self.settings.llm.model}）", AnswerMode.LLM.value))
            answer_modes = gr.CheckboxGroup(answer_choices, value=[AnswerMode.READER.value], label="回答方式")
            k = gr.Slider(1, 20, value=10, step=1, label="检索指标的 k")
            limit = gr.Number(value=0, precision=0, minimum=0, label="只评前 N 题（0 = 全部）")
        run = gr.Button("运行评测", variant="primary", elem_id="eval-run")
        status = gr.Markdown("", elem_id="eval-status")
        summary = gr.Dataframe(headers=[label for label, _ in EVAL_COLUMNS], interactive=False, label="汇总",
                               elem_id="eval-summary")
        # height="auto": a fixed height cropped the plots' x axis until a plot was clicked.
        plots = gr.Gallery(label="图表", columns=2, height="auto", object_fit="contain", elem_id="eval-plots",
                           buttons=["fullscreen", "download"])
        with gr.Row():
            only_misses = gr.Radio([("全部问题", False), ("只看错题", True)], value=False, label="逐题结果")
            config = gr.Dropdown(["全部配置"], value="全部配置", label="配置")
        questions = gr.Dataframe(headers=QUESTION_COLUMNS, interactive=False, wrap=True, label="逐题结果",
                                 elem_id="eval-questions", max_height=640,
                                 column_widths=["6%", "12%", "7%", "24%", "26%", "8%", "6%", "5%", "6%"])
        rows = gr.State([])
        hidden = {"api_visibility": "private"}
        run.click(self.run_evaluation, [modes, answer_modes, k, limit], [status, summary, plots, rows, config],
                  concurrency_id="eval", concurrency_limit=1, **hidden).then(
            filter_questions, [rows, only_misses, config], [questions], **hidden)
        for control in (only_misses, config):
            control.change(filter_questions, [rows, only_misses, config], [questions], **hidden)

    def run_evaluation(self, modes: list[str], answer_modes: list[str], k: float, limit: float | None,
                       progress=gr.Progress()):
        """Run the gold-set evaluation on the live index; return status, summary, plots, question rows, configs."""
        from rag import evaluate

        if not modes:
            raise refusal("请至少选择一种检索方式。")

        def update(stage: str, done: int, total: int) -> None:
            progress((done, total), desc=f"{stage}")

        started = time.monotonic()
        try:
            report = evaluate.run_eval(
                self.kb.index, self.gold_path, modes=modes, answer_modes=answer_modes or [AnswerMode.READER.value],
                k=int(k), out_dir=self.eval_dir, progress=update, limit=int(limit) if limit else None,
                settings=self.settings,
            )
        except (evaluate.GoldError, ValueError) as exc:
            raise gr.Error(f"评测无法运行：{exc}", title="出错了") from exc
        images = [(_image(p), p.stem) for p in report.plots]
        lines = [f"完成：{report.settings['questions']} 题 × {len(report.rows)} 种配置，用时 {time.monotonic() - started:.1f} 秒。"
                 f"报告：{report.report_dir}/report.md"]
        lines += [f"注：{page_note(note)}" for note in report.notes]
        configs = ["全部配置"] + [row.label for row in report.rows]
        return ("\n\n".join(md_text(line) for line in lines), summary_rows(report), images,
                question_rows(report), gr.update(choices=configs, value="全部配置"))


EVAL_COLUMNS = (
    ("配置", None), ("R@1", "recall@1"), ("R@5", "recall@5"), ("R@k", "recall@{k}"), ("MRR@k", "mrr@{k}"),
    ("nDCG@k", "ndcg@{k}"), ("包含率", "containment"), ("短答EM", "em"), ("短答F1", "short_f1"), ("F1", "f1"), ("引用精确率", "citation_precision"),
    ("引用召回率", "citation_recall"), ("拒答F1", "abstention_f1"), ("误拒率", "false_abstention"),
    ("平均用时(s)", "latency_mean"),
)
QUESTION_COLUMNS = ["id", "配置", "类型", "问题", "回答", "结果", "首个相关排名", "置信度", "用时(s)"]


def _choice(kind, value, name: str):
    """Return `value` as a member of the enum `kind`; raise ValueError listing the allowed values."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {', '.join(m.value for m in kind)}, got {value!r}") from None


def _k(value) -> int:
    """Return the API's k as an int within 1..API_MAX_K; raise ValueError for anything else (None, 1.5, "3")."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 1 <= value <= API_MAX_K:
        raise ValueError(f"k must be a whole number of passages from 1 to {API_MAX_K}, got {value!r}")
    return int(value)


def summary_rows(report) -> list[list]:
    """Return one table row per evaluated configuration (metrics rounded; missing ones as "–")."""
    k = report.settings["k"]
    out = []
    for row in report.rows:
        cells = [row.label]
        for _, key in EVAL_COLUMNS[1:]:
            value = row.metrics.get(key.format(k=k))
            cells.append("–" if value is None else round(value, 3))
        out.append(cells)
    return out


def question_rows(report) -> list[list]:
    """Return one row per question and configuration; column 结果 says hit, miss, abstained or wrongly answered."""
    out = []
    for q in report.questions:
        answer = _MARKER.sub("", q.answer)
        if q.error:
            verdict = "✗ 出错"
        elif q.answerable:
            verdict = "✗ 拒答" if q.abstained else ("✓ 命中" if q.scores.get("contains") else "✗ 未答对")
        else:
            verdict = "✓ 正确拒答" if q.abstained else "✗ 不该回答"
        rank = q.relevant_ranks[0] if q.relevant_ranks else "–"
        label = f"{q.mode.value}/{q.answer_mode.value}"
        out.append([q.id, label, q.type, q.question, "（拒答）" if q.abstained else answer, verdict, rank,
                    round(q.confidence, 2), round(q.latency, 2)])
    return out


def filter_questions(rows: list[list], only_misses: bool, config: str) -> list[list]:
    """Return the question rows of one configuration (or all), optionally only the misses."""
    return [r for r in rows if (not only_misses or r[5].startswith("✗")) and config in ("全部配置", r[1])]


def _image(path: Path):
    from PIL import Image

    # Handed over as pixels, so the page never needs file access to the reports folder.
    with Image.open(path) as image:
        return image.copy()


def _status(lines: Sequence[str]) -> str:
    return "\n\n".join(md_text(line) for line in lines)


# What each stage of an index update is called on the page (stages of build_index and KnowledgeBase).
_STAGES = {"read": "读取并切分文档", "bm25": "建立关键词索引", "save": "保存索引", "load": "载入新索引"}


def _progress(progress) -> Callable[[str, int, int], None]:
    def update(stage: str, done: int, total: int) -> None:
        if stage.startswith("OCR"):  # a scan read page by page before anything is embedded
            progress((done, max(done, total, 1)), desc=f"{stage}识别中（{done}/{total}页）")
            return
        if stage.startswith("convert "):  # a folder's file converted by a rebuild: file i of n
            progress((done, max(total, 1)), desc=f"转换 {stage[len('convert '):]}（第{done + 1}/{total}个文件）")
            return
        if ": OCR" in stage:  # "name: OCR 第2页" from a folder's scan
            progress((done, max(done, total, 1)), desc=f"{stage.replace(': ', '：')}识别中（{done}/{total}页）")
            return
        if stage == "embed":  # counts only the text not yet in the cache, batch by batch
            if total:
                progress((done, total), desc="嵌入新内容（段落与句子）", unit="条")
            return
        progress(None, desc=_STAGES.get(stage, stage))

    return update


_PLACEHOLDER = "**问渝** 从知识库的文档中找答案，每句话都注明出处。\n\n点击回答里的 [1]、[2] 可在右侧查看原文。"


def _scroll_to_mark(block: str) -> str:
    """Return js_on_load code scrolling the component's <mark> into view on load and on every new value."""
    return f"""
const reveal = () => setTimeout(() => {{
  const mark = element.querySelector('mark');
  if (mark) mark.scrollIntoView({{block: '{block}', behavior: 'smooth'}});
}}, 50);
reveal();
watch('value', reveal);
"""


_COPY_JS = """
(text) => {
  if (!text) return [];
  const done = () => {
    const button = document.querySelector('#copy');
    if (!button) return;
    const label = button.textContent;
    button.textContent = '✓ 已复制';
    setTimeout(() => { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done);
  } else {
    const area = document.createElement('textarea');
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand('copy'); area.remove(); done();
  }
  return [];
}
"""

_CONFIRM_DELETE_JS = "(file) => (file && confirm('删除 ' + file + ' 并更新索引？')) ? file : null"


def launch_options() -> dict:
    """Return the `launch()` arguments for the page: theme, CSS and JS from rag/assets, nothing shared."""
    theme = gr.themes.Soft(
        primary_hue="teal",
        neutral_hue="slate",
        # Local fonts only: the page works offline and loads nothing from font CDNs.
        font=["PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    return {
        "theme": theme,
        "css": (ASSETS / "app.css").read_text(encoding="utf-8"),
        "js": (ASSETS / "app.js").read_text(encoding="utf-8").replace("__UPLOAD_ACCEPT__", ",".join(UPLOAD_SUFFIXES)),
        "share": False,
        "allowed_paths": [],
        "max_file_size": 4 * MAX_UPLOAD_BYTES,  # a backstop; the KB's own check gives the clear message
        "footer_links": ["api"],
        "run_history": False,  # questions stay on the server, not in the browser's storage
    }


def serve(kb: KnowledgeBase, host: str = "127.0.0.1", port: int = 7860, block: bool = True, **kwargs) -> gr.Blocks:
    """Build the page over `kb` and serve it; return the Blocks (running in the background if not `block`)."""
    app = ChatApp(kb, **kwargs)
    demo = app.build()
    # The page comes up while the reader and the rest load; a question asked meanwhile waits for them.
    threading.Thread(target=app.warm, name="warm", daemon=True).start()
    demo.queue(default_concurrency_limit=1)
    blocked = [str(kb.docs_dir.resolve()), str(kb.index_dir.resolve())]
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, inbrowser=False,
                quiet=not block, blocked_paths=blocked, **launch_options())
    return demo
