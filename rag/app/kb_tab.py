"""The 知识库 tab's handlers (list, upload, delete, rebuild) and the page's header and index notice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr

from rag.app.render import esc, md_text
from rag.app.state import PageState
from rag.app.uploads import GONE, discard_upload, saved_bytes
from rag.index import IndexProblem
from rag.kb import UploadError, skipped_summary

log = logging.getLogger(__name__)


class KnowledgeTab:
    """The knowledge base's views and changes over the page's shared state."""

    def __init__(self, state: PageState) -> None:
        self.state = state

    def document_table(self) -> list[list]:
        """Return the rows of the document list."""
        return [[r.title, r.file, r.date or "", r.chunks, r.added, r.note] for r in self.state.kb.documents()]

    def _views(self, message: str):
        files = [r.file for r in self.state.kb.documents()]
        return (self.document_table(), gr.update(choices=files, value=None), message, self.header())

    def _locked(self, password: str | None) -> str:
        """Why a change is refused for this password (empty when it may go ahead)."""
        if self.state.auth.may_edit(password):
            return ""
        log.warning("refused: a knowledge-base change without the editor password")
        return "✗ 修改知识库需要编辑密码：请在上方输入正确的编辑密码，知识库未改变。"

    def upload(self, paths: list[str] | None, password: str | None = None, progress=gr.Progress()):
        """Validate, store and index uploaded files, one by one; report each."""
        if not paths:
            return gr.update(), gr.update(), "请先选择要上传的文件。", gr.update(), gr.update()
        refused = self._locked(password)
        if refused:
            for path in paths:  # nothing is lost: the user still has the files, and may upload them again
                discard_upload(Path(path), self.state.upload_dir)
            return self._views(_status([refused])) + (None,)
        lines = []
        for path in paths:
            path = Path(path)
            data = saved_bytes(path)
            if data is None:
                lines.append(f"✗ {path.name}：{GONE}")
                continue
            try:
                upload, report = self.state.kb.add(path.name, data, progress=_progress(progress))
            except UploadError as exc:
                lines.append(f"✗ {exc}")
                continue
            except Exception as exc:  # an unexpected failure of one file must not hide the others' results
                log.exception("adding %s failed", path.name)
                lines.append(f"✗ {path.name}：索引失败（{type(exc).__name__}: {exc}），知识库未改变")
                continue
            finally:  # stored in the documents folder, or refused: Gradio's copy is no longer needed
                discard_upload(path, self.state.upload_dir)
            how = "已转换并" if upload.converted else "已"  # kept as uploaded; its text is in the index's cache
            lines.append(f"✓ {upload.source} {how}加入知识库：新嵌入 {report.embedded} 段，复用缓存 {report.cached} 段，"
                         f"用时 {report.seconds:.1f} 秒")
        return self._views(_status(lines)) + (None,)

    def delete(self, file: str | None, password: str | None = None, progress=gr.Progress()):
        """Delete one document and re-index."""
        if not file:  # nothing chosen, or the confirmation was cancelled
            return self._views(_status(["未删除任何文档：请先在下拉框中选择要删除的文档并确认。"]))
        refused = self._locked(password)
        if refused:
            return self._views(_status([refused]))
        try:
            report = self.state.kb.delete(file, progress=_progress(progress))
        except UploadError as exc:
            return self._views(_status([f"✗ {exc}"]))
        return self._views(_status([f"✓ 已删除 {file}，索引已更新（{report.documents} 篇文档，{report.chunks} 个段落）"]))

    def rebuild(self, password: str | None = None, progress=gr.Progress()):
        """Re-index the documents folder (changed files only are embedded)."""
        refused = self._locked(password)
        if refused:
            return self._views(_status([refused]))
        try:
            report = self.state.kb.rebuild(progress=_progress(progress))
        except (FileNotFoundError, IndexProblem) as exc:
            return self._views(_status([f"✗ 索引未重建，原索引仍在使用：{exc}"]))
        return self._views(_status([
            f"✓ 索引已重建：{report.documents} 篇文档，{report.chunks} 个段落；新嵌入 {report.embedded} 段，"
            f"复用缓存 {report.cached} 段，用时 {report.seconds:.1f} 秒"
        ] + skipped_summary(report.skipped)))  # every file accounted for, as `rag index` does

    def header(self) -> str:
        """Return the page header: name, corpus size and model."""
        index = self.state.kb.index
        return (f'<div class="app-head"><div class="app-title">问渝 <span>· 有出处的中文问答</span></div>'
                f'<div class="app-sub">{len(index.documents)} 篇文档 · {len(index.chunks)} 个段落 · '
                f'向量模型 {esc(index.manifest["embedder"]["id"])} · 文档目录 {esc(str(self.state.kb.docs_dir))}</div></div>')

    def index_notice(self):
        """Return the notice above the tabs: a newer build on disk (switched to) or changed documents.

        A build another process finished (`rag index`) is complete and checked when loaded, and it is
        what that user asked for: it is switched to at once. Edited or added files are only reported,
        with a button to update: a file may be half-saved, and an update costs the CPU while answering.
        """
        index, state = self.state.follow_disk()
        lines, offer_update = [], False
        adopted_path, adopted_message = self.state.adopted
        if adopted_path == index.path:
            lines.append(adopted_message)
        if self.state.kb.changing:
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
            self.state.kb.rebuild(progress=_progress(progress))
        except (FileNotFoundError, IndexProblem) as exc:
            gr.Warning(f"索引未更新，原索引仍在使用：{exc}")
        table, choice, _, _ = self._views("")
        return (*self.index_notice(), table, choice)

    def page_views(self):
        """Return the header, document table and delete choices for a newly opened page."""
        table, choice, _, header = self._views("")
        return header, table, choice


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
