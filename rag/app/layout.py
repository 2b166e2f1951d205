"""The page's layout: the gr.Blocks with its tabs and their wiring, the JS it runs, and `serve`."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from rag.answer import Answerer
from rag.app.api import Api, PageBlocks
from rag.app.chat import Chat
from rag.app.eval_tab import EVAL_COLUMNS, QUESTION_COLUMNS, EvaluationTab, filter_questions
from rag.app.history import HISTORY_KEY, BrowserHistory, history_choices, history_secret
from rag.app.kb_tab import KnowledgeTab
from rag.app.render import sources_placeholder
from rag.app.session import Turn
from rag.app.state import ANSWER_SLOTS, DEFAULT_K, PageState
from rag.auth import READER_USER, AuthConfig
from rag.config import Settings
from rag.kb import CONVERTED_SUFFIXES, MAX_UPLOAD_BYTES, UPLOAD_SUFFIXES, KnowledgeBase
from rag.types import AnswerMode, Mode

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_K = 10
# How often an open page checks the disk for a newer index or edited documents (a stat per file).
NOTICE_SECONDS = 15

MODE_CHOICES = [("混合（推荐）", Mode.HYBRID.value), ("向量", Mode.DENSE.value), ("关键词 BM25", Mode.BM25.value)]
MODE_LABELS = {value: label for label, value in MODE_CHOICES}


class ChatApp:
    """The page over one shared `KnowledgeBase`: its handlers, one object per tab; `build()` returns the Gradio Blocks."""

    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None, gold_path: Path | None = None,
                 eval_dir: Path | None = None, auth: AuthConfig | None = None) -> None:
        self.state = PageState(kb, settings, auth)
        self.api = Api(self.state)
        self.chat = Chat(self.state)
        self.history = BrowserHistory(self.state)
        self.knowledge = KnowledgeTab(self.state)
        self.evaluation = EvaluationTab(self.state, gold_path, eval_dir)

    def after_answer(self, turns: list[Turn]):
        """Return the follow-up bar and the index notice, refreshed after an answer."""
        return (*self.chat.follow_up_view(turns), *self.knowledge.index_notice())

    def build(self) -> gr.Blocks:
        """Return the Gradio app."""
        answerer = self.state.answerer()
        llm = answerer.llm_available
        with PageBlocks(title="问渝 · 有出处的中文问答", analytics_enabled=False) as demo:
            header = gr.HTML(self.knowledge.header())
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
            gr.api(self.api.ask, api_name="ask", concurrency_limit=ANSWER_SLOTS)
            # The knowledge tab's actions for programs (the load test uses them); changes take turns
            # with the tab's own buttons in the "kb" group.
            gr.api(self.api.list_documents, api_name="documents", concurrency_limit=ANSWER_SLOTS)
            gr.api(self.api.add_document, api_name="add_document", concurrency_id="kb", concurrency_limit=1)
            gr.api(self.api.remove_document, api_name="delete_document", concurrency_id="kb", concurrency_limit=1)
            # Values given at build time are the page's defaults; a page opened after a knowledge-base
            # change must show the documents as they are now.
            notice_views = {"fn": self.knowledge.index_notice, "outputs": self._notice_outputs, "show_progress": "hidden",
                            "api_visibility": "private", "concurrency_id": "notice", "concurrency_limit": 1}
            demo.load(**notice_views).then(self.knowledge.page_views, None, [header, table, choice], api_visibility="private")
            # A page left open notices another process's build or an edited document without a question.
            gr.Timer(NOTICE_SECONDS).tick(**notice_views)
            update_index.click(self.knowledge.update_index, None, [*self._notice_outputs, table, choice], api_visibility="private",
                               concurrency_id="kb", concurrency_limit=1)
        return demo

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
                history = gr.BrowserState([], storage_key=HISTORY_KEY, secret=history_secret(self.state.kb.index_dir))
                conversation = gr.State("")
                with gr.Accordion("历史对话（保存在本浏览器，未加密）", open=False, elem_id="history"):
                    with gr.Row():
                        picker = gr.Dropdown(choices=[], value=None, label="选择对话", scale=4, elem_id="history-choice")
                        restore = gr.Button("恢复", size="sm", scale=1, elem_id="history-restore")
                        forget = gr.Button("清除历史", size="sm", variant="stop", scale=1, elem_id="history-clear")
                    history_status = gr.Markdown("", elem_id="history-status")
                examples = self.chat.examples()
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
            answered.append(trigger(self.chat.respond, [question, turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS, **hidden).then(
                lambda: (gr.update(visible=False), gr.update(visible=False)), None, [view_article, article], **hidden
            ).then(**follow_up_views))
        if shown is not None:  # clicking an example asks it
            answered.append(shown.load_input_event.then(self.chat.respond, [question, turns, *settings], outputs,
                                                        concurrency_limit=ANSWER_SLOTS, **hidden).then(**follow_up_views))
        answered.append(retry.click(self.chat.retry, [turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS, **hidden).then(
            **follow_up_views))
        answered.append(literal.click(self.chat.ask_literal, [turns, *settings], outputs, concurrency_limit=ANSWER_SLOTS,
                                      **hidden).then(**follow_up_views))
        edit.click(self.chat.edit_resolved, [turns], [question], show_progress="hidden", **hidden)
        chatbot.clear(self.chat.clear, None, [chatbot, turns, sources, copy_value, focus, view_article, article], **hidden)
        clear.click(self.chat.clear, None, [chatbot, turns, sources, copy_value, focus, view_article, article], **hidden)
        for trigger in (clear.click, chatbot.clear):
            trigger(lambda: gr.update(visible=False), None, [follow_up], **hidden)
        copy.click(None, [copy_value], None, js=_COPY_JS, **hidden)
        cite_open.click(self.chat.open_source, [cite_key, turns], [sources, focus, view_article, article],
                        show_progress="hidden", **hidden)
        view_article.click(self.chat.show_article, [focus], [article], show_progress="hidden", **hidden)
        # Browser-side history: every answered turn updates the conversation's record; 清空对话 starts a new one.
        saved = [history, picker, conversation]
        remember = {"fn": self.history.remember, "inputs": [turns, conversation, history], "outputs": saved,
                    "show_progress": "hidden", **hidden}
        for event in answered:
            event.then(**remember)
        for trigger in (clear.click, chatbot.clear):
            trigger(lambda: "", None, [conversation], **hidden)
        restore.click(self.history.restore, [picker, history], [chatbot, turns, sources, copy_value, conversation], **hidden)
        forget.click(self.history.forget, None, [history, picker, history_status], **hidden)
        gr.context.Context.root_block.load(lambda h: gr.update(choices=history_choices(h), value=None), [history],
                                           [picker], **hidden)

    def _kb_tab(self, header) -> tuple[gr.Dataframe, gr.Dropdown]:
        convert = "、".join(CONVERTED_SUFFIXES)
        gr.Markdown(
            f"文档保存在 `{self.state.kb.docs_dir}`。可上传 {'、'.join(UPLOAD_SUFFIXES)}，单个文件不超过 "
            f"{MAX_UPLOAD_BYTES // 1024 // 1024} MB；{convert} 保留原文件，提取的文字用于检索。"
            "上传或删除后索引自动更新，只有新内容需要嵌入。",
            elem_classes=["hint"],
        )
        table = gr.Dataframe(
            value=self.knowledge.document_table(), headers=["标题", "文件", "日期", "段落数", "添加时间", "备注"],
            datatype=["str", "str", "str", "number", "str", "str"], interactive=False, wrap=True,
            label="文档列表", elem_id="doc-table",
        )
        # Shown only when changes are locked (rag/auth.py); the handlers check it on the server.
        password = gr.Textbox(label="编辑密码", type="password", visible=self.state.auth.editing_locked,
                              placeholder="上传、删除和重建索引需要编辑密码", elem_id="editor-password")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                # No file_types: Gradio's own check refuses in English ("Invalid file type"); KnowledgeBase.add says why in Chinese.
                files = gr.File(label="上传文档", file_count="multiple", type="filepath", elem_id="upload")
                upload = gr.Button("上传并更新索引", variant="primary", elem_id="upload-button")
            with gr.Column(scale=2):
                choice = gr.Dropdown(choices=[r[1] for r in self.knowledge.document_table()], label="删除文档",
                                     value=None, elem_id="delete-choice")
                delete = gr.Button("删除所选文档", variant="stop", elem_id="delete-button")
                rebuild = gr.Button("重建索引", elem_id="rebuild-button")
        status = gr.Markdown("", elem_id="kb-status")
        hidden = {"api_visibility": "private", "concurrency_id": "kb", "concurrency_limit": 1}
        views = [table, choice, status, header]
        # After a change of ours the notice about the disk is out of date (a switch it reported, files it listed).
        notice = {"fn": self.knowledge.index_notice, "outputs": self._notice_outputs, "show_progress": "hidden",
                  "api_visibility": "private"}
        upload.click(self.knowledge.upload, [files, password], views + [files], **hidden).then(**notice)
        delete.click(self.knowledge.delete, [choice, password], views, js=_CONFIRM_DELETE_JS, **hidden).then(**notice)
        rebuild.click(self.knowledge.rebuild, [password], views, **hidden).then(**notice)
        return table, choice

    def _eval_tab(self) -> None:
        if not self.evaluation.evaluation_available():
            gr.Markdown(f"评测不可用：需要评测模块 `rag.evaluation` 和金标准问题集 `{self.evaluation.gold_path}`。", elem_classes=["hint"])
            return
        gr.Markdown(
            f"用金标准问题集 `{self.evaluation.gold_path}` 评测当前知识库：检索（Recall、MRR、nDCG）、回答（包含率、F1）、"
            f"引用（精确率、召回率）与拒答。报告保存在 `{self.evaluation.eval_dir}`。"
            "用时取决于题数、配置数和机器负载（首次运行还要加载模型），完成后显示实测用时，每题平均用时见汇总表。",
            elem_classes=["hint"],
        )
        with gr.Row():
            modes = gr.CheckboxGroup(MODE_CHOICES, value=[Mode.HYBRID.value], label="检索方式")
            answer_choices = [("阅读器", AnswerMode.READER.value), ("抽取式", AnswerMode.EXTRACTIVE.value)]
            if self.state.answerer().llm_available:
                answer_choices.append((f"大模型（{self.state.settings.llm.model}）", AnswerMode.LLM.value))
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
        run.click(self.evaluation.run_evaluation, [modes, answer_modes, k, limit], [status, summary, plots, rows, config],
                  concurrency_id="eval", concurrency_limit=1, **hidden).then(
            filter_questions, [rows, only_misses, config], [questions], **hidden)
        for control in (only_misses, config):
            control.change(filter_questions, [rows, only_misses, config], [questions], **hidden)


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

_CONFIRM_DELETE_JS = "(file, password) => (file && confirm('删除 ' + file + ' 并更新索引？')) ? [file, password] : [null, password]"


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
    auth = app.state.auth
    # The page comes up while the reader and the rest load; a question asked meanwhile waits for them.
    threading.Thread(target=app.state.warm, name="warm", daemon=True).start()
    demo.queue(default_concurrency_limit=1)
    blocked = [str(kb.docs_dir.resolve()), str(kb.index_dir.resolve())]
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, inbrowser=False,
                quiet=not block, blocked_paths=blocked, **launch_options(),
                # A reader password puts Gradio's login in front of everything, the API included.
                auth=auth.may_read if auth.reader_password else None,
                auth_message=f"请输入阅读密码（用户名任意，如 {READER_USER}）" if auth.reader_password else None)
    return demo
