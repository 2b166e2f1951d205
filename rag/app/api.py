"""The page's API for programs: `/ask`, `/documents`, `/add_document`, `/delete_document`."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import gradio as gr
from gradio import FileData

from rag.app.state import DEFAULT_K, PageState
from rag.app.uploads import GONE, discard_upload, in_upload_folder, saved_bytes
from rag.config import MAX_PASSAGES
from rag.kb import UploadError
from rag.retrieve import QuestionError
from rag.types import Answer, AnswerMode, Mode

log = logging.getLogger(__name__)

API_MAX_K = MAX_PASSAGES


def refusal(message: str) -> gr.Error:
    """Return the error for a request the app refuses (bad question, k, file): the caller sees the
    message, the server's terminal one log line instead of Gradio's 30-line traceback."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False, title="无法处理")


def enum_choice(kind, value, name: str):
    """Return `value` as a member of the enum `kind`; raise ValueError listing the allowed values."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name} must be one of {', '.join(m.value for m in kind)}, got {value!r}") from None


def whole_k(value) -> int:
    """Return the API's k as an int within 1..API_MAX_K; raise ValueError for anything else (None, 1.5, "3")."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or not 1 <= value <= API_MAX_K:
        raise ValueError(f"k must be a whole number of passages from 1 to {API_MAX_K}, got {value!r}")
    return int(value)



class Api:
    """The API's handlers; the knowledge base's changes take turns with the 知识库 tab's buttons."""

    def __init__(self, state: PageState) -> None:
        self.state = state

    def ask(self, question: str, mode: str = "hybrid", k: int = DEFAULT_K, answer_mode: str = "reader") -> dict:
        """Answer a question from the knowledge base; return the Answer as JSON (see Answer.to_dict)."""
        try:
            mode, answer_mode, k = enum_choice(Mode, mode, "mode"), enum_choice(AnswerMode, answer_mode, "answer_mode"), whole_k(k)
            answer = None
            for item in self.state.stream(self.state.answerer(), question, (), mode, k, answer_mode):
                if isinstance(item, Answer):
                    answer = item
            return answer.to_dict()
        except (QuestionError, ValueError) as exc:
            raise refusal(str(exc)) from exc

    def list_documents(self) -> list[dict]:
        """Return the knowledge base's documents: title, file, date, chunks, time added and note."""
        return [dataclasses.asdict(row) for row in self.state.kb.documents()]

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
        if not in_upload_folder(path, self.state.upload_dir):
            raise refusal(f"{name}：只接受先上传到本服务的文件（gradio_client 的 handle_file），不读取服务器上的其他路径")
        data = saved_bytes(path)
        if data is None:
            raise refusal(f"{name}：{GONE}")
        try:
            upload, report = self.state.kb.add(name, data)
        except UploadError as exc:
            raise refusal(str(exc)) from exc
        except Exception as exc:  # as on the page: the reason, not Gradio's generic error
            log.exception("adding %s failed", name)
            raise gr.Error(f"{name}：索引失败（{type(exc).__name__}: {exc}），知识库未改变", title="出错了") from exc
        finally:
            discard_upload(path, self.state.upload_dir)
        return {"file": upload.name, "source": upload.source, "converted": upload.converted,
                "documents": report.documents, "chunks": report.chunks, "embedded": report.embedded,
                "cached": report.cached, "seconds": round(report.seconds, 3)}

    def remove_document(self, file: str) -> dict:
        """Delete one document by its file name and re-index; return the new corpus size."""
        try:
            report = self.state.kb.delete(file)
        except UploadError as exc:
            raise refusal(str(exc)) from exc
        return {"file": file, "documents": report.documents, "chunks": report.chunks,
                "seconds": round(report.seconds, 3)}
