"""The 对话 tab's handlers: answer (streamed from an LLM), ask again, open a source, show the whole article."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace

import gradio as gr

from rag.app.render import (
    article_view,
    chat_messages,
    copy_text,
    esc,
    focused_citation,
    focused_passage,
    md_text,
    resolved_question,
    sources_overview,
    sources_placeholder,
)
from rag.app.session import Focus, Turn, answered_turn
from rag.app.state import PageState
from rag.llm import Discard
from rag.retrieve import QuestionError
from rag.types import Answer, AnswerMode, Document

log = logging.getLogger(__name__)

# Questions about facts the seed articles state, checked to be answered (none is in eval/gold.jsonl).
# Only those the live index answers are shown, so another corpus falls back to its titles.
EXAMPLE_QUESTIONS = (
    "赛力斯的协同平台接入了多少家上下游企业？",
    "“疆算入渝”用什么技术构建算力网主干道？",
    "高校毕业生首次经营小微软信企业，创业担保贷款最高多少？",
    "重庆科技服务业增加值力争增长多少？",
)
MAX_EXAMPLES = 4


class Chat:
    """The chat's handlers over the page's shared state."""

    def __init__(self, state: PageState) -> None:
        self.state = state

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
        answerer = self.state.answerer()  # one index for the whole answer, even if the knowledge base changes meanwhile
        # Earlier questions as they were understood, so the topic carries over several follow-ups;
        # `literal` asks the question as typed, with no conversation.
        history = [] if literal else [resolved_question(t) or t.question for t in turns]
        partial, answer = "", None
        # Only an LLM's answer is worth streaming. The reader's and the sentence picker's are whole after
        # 10-60 ms, before their first piece: sent piece by piece they reached the page at once anyway.
        streamed = AnswerMode(answer_mode) is AnswerMode.LLM and answerer.llm_available
        try:
            for item in self.state.stream(answerer, question, history, mode, int(k), answer_mode):
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

    def edit_resolved(self, turns: list[Turn]):
        """Put the last follow-up, as understood, into the question box for correcting."""
        resolved = resolved_question(turns[-1]) if turns else ""
        return resolved or gr.update()

    def clear(self):
        """Return an empty conversation."""
        return [], [], sources_placeholder(), "", None, gr.update(visible=False), gr.update(value="", visible=False)

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
        live = next((d for d in self.state.kb.index.documents.values() if d.file == document.file), None)
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

    def examples(self) -> list[str]:
        """Return example questions the live index answers: the curated list, else ones from document titles."""
        answerer = self.state.answerer()
        found = [q for q in EXAMPLE_QUESTIONS if not answerer.run(q).abstained]
        if not found:
            titles = [d.title for d in answerer.index.documents.values() if d.title]
            found = [q for q in (f"{t}讲了什么？" for t in titles[: 2 * MAX_EXAMPLES]) if not answerer.run(q).abstained]
        return found[:MAX_EXAMPLES]
