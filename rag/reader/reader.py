"""The reader as the answerer uses it: question + passages in, the best span of each passage out."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from rag.reader.model import ADAPTER_FILE, CONFIG_FILE, ReaderModel, ReaderUnavailable
from rag.reader.windows import Span, encode, question_ids

DEFAULT_ADAPTER = Path(__file__).resolve().parent.parent / "data" / "reader"


class Reader:
    """Finds answer spans with the trained adapter in `folder`; the model loads on first use."""

    def __init__(self, folder: Path = DEFAULT_ADAPTER) -> None:
        self.folder = Path(folder)
        self._model: ReaderModel | None = None
        self._loading = threading.Lock()

    @property
    def available(self) -> bool:
        """True when the adapter files are there and torch can be imported."""
        if not ((self.folder / ADAPTER_FILE).exists() and (self.folder / CONFIG_FILE).exists()):
            return False
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
        return True

    @property
    def model(self) -> ReaderModel:
        """The loaded reader (LoRA merged, bf16 when the CPU has it)."""
        with self._loading:  # two questions at once must not load the weights twice
            if self._model is None:
                if not self.available:
                    raise ReaderUnavailable(f"no reader adapter in {self.folder} (or torch is missing: pip install torch)")
                self._model = ReaderModel.load(self.folder)
        return self._model

    def read(self, question: str, passages: list[str]) -> list[Span | None]:
        """Return the best answer span of each passage, with its answerability logit."""
        from rag.reader.read import read_windows

        model = self.model
        q_ids = question_ids(model.tokenizer, question)
        windows = [encode(model.tokenizer, q_ids, p, _pieces(model.tokenizer, p), model.max_positions) for p in passages]
        return read_windows(model, windows)


@functools.lru_cache(maxsize=8192)
def _pieces_cached(tokenizer_id: int, tokenizer, passage: str) -> tuple:
    return tuple(tokenizer.pieces(passage))


def _pieces(tokenizer, passage: str) -> list:
    # Tokenizing is pure Python (~6 µs a character); the same sentences come back question after question.
    return list(_pieces_cached(id(tokenizer), tokenizer, passage))
