"""What every handler of the page shares: the knowledge base, the settings, the reader and the LLM slots."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from gradio.utils import get_upload_folder

from rag.answer import Answerer
from rag.config import Settings, load_settings
from rag.freshness import FreshnessCheck
from rag.kb import KnowledgeBase
from rag.reader.reader import Reader
from rag.types import Answer, AnswerMode

log = logging.getLogger(__name__)

DEFAULT_K = 5
# An LLM answer mostly waits on the network, up to its timeout. At most LLM_SLOTS run at once (one
# more gets the extractive answer at once, with a note), and every answer event admits that many
# more than the two extractive answers two cores serve well: waiting LLM calls can never take the
# places extractive questions need (with two slots, two slow LLM calls held /ask for a minute).
LLM_SLOTS = 2
ANSWER_SLOTS = 2 + LLM_SLOTS


class PageState:
    """The page's shared state over one `KnowledgeBase`: the live index's answerer, and what changed on disk."""

    def __init__(self, kb: KnowledgeBase, settings: Settings | None = None) -> None:
        self.kb = kb
        self.settings = settings or load_settings()
        self._llm_slots = threading.BoundedSemaphore(LLM_SLOTS)
        self.reader = Reader()  # one reader for every question: it loads its weights on first use
        # Where Gradio saves uploads (GRADIO_TEMP_DIR, else <tmp>/gradio), read as gr.Blocks reads it.
        self.upload_dir = Path(get_upload_folder()).resolve()
        self.freshness = FreshnessCheck(kb.docs_dir, kb.index_dir)  # what changed on disk under the live index
        self.adopted: tuple[Path | None, str] = (None, "")  # the build switched to from disk, and the note

    def answerer(self) -> Answerer:
        """Return an answerer over the live index (cheap: it shares the loaded index and the reader)."""
        self.follow_disk()  # a build another process finished is answered from (checked every 2 s at most)
        return Answerer(self.kb.index, settings=self.settings, reader=self.reader)

    def warm(self) -> None:
        """Load the models a first question would wait for; a failure here is the first question's to report."""
        try:
            self.answerer().warm()
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation
            log.warning("warming the answerer failed: %s", exc)

    def follow_disk(self):
        """Switch to a newer build on disk, if there is one; return the live index and how the disk differs."""
        index = self.kb.index
        state = self.freshness.check(index.path, index.manifest)
        if state.newer_build:
            adopted = self.kb.adopt_newer_build()
            if adopted is not None:
                index = adopted
                built = str(adopted.manifest.get("built_at", ""))[:19].replace("T", " ")
                self.adopted = (adopted.path, f"已换用磁盘上更新的索引（另一进程于 {built} UTC 建成）："
                                               f"{len(adopted.documents)} 篇文档，{len(adopted.chunks)} 个段落。")
                state = self.freshness.check(index.path, index.manifest, force=True)
        return self.kb.index, state

    def stream(self, answerer: Answerer, question: str, history: Sequence[str], mode, k: int,
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
