"""The conversations a browser keeps (localStorage, encrypted): records, their key, and restoring them."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from rag.app.api import enum_choice, whole_k
from rag.app.render import chat_messages, copy_text, resolved_question, sources_placeholder
from rag.app.session import Turn, answered_turn
from rag.app.state import DEFAULT_K, PageState
from rag.types import AnswerMode, Mode

log = logging.getLogger(__name__)


HISTORY_KEY = "wenyu-conversations"
MAX_HISTORY = 20  # conversations kept in the browser (localStorage holds a few MB)
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


class BrowserHistory:
    """The history accordion's handlers: store the conversation, restore one (its sources found again), forget all."""

    def __init__(self, state: PageState) -> None:
        self.state = state

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
            answerer = self.state.answerer()
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
                answer = answerer.run(question, (), mode=enum_choice(Mode, item.get("mode", "hybrid"), "mode"),
                                         k=whole_k(item.get("k", DEFAULT_K)), answer_mode=item["answer_mode"])
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
