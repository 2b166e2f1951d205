"""The reader as the answerer uses it: question + passages in, the best span of each passage out."""

from __future__ import annotations

import functools
import json
import os
import threading
from pathlib import Path

from rag.paths import reader_dir
from rag.reader.model import ADAPTER_FILE, CONFIG_FILE, ReaderModel, ReaderUnavailable
from rag.reader.windows import Span, encode, question_ids
from rag.text import to_simplified

ABSTENTION_FILE = "abstention.json"  # the abstention model `rag calibrate` fitted for this adapter


class Reader:
    """Finds answer spans with the trained adapter in `folder` (default: `rag.paths.reader_dir()`); the model loads on first use."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else reader_dir()
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

    @functools.cached_property
    def reads_english(self) -> bool:
        """True when the adapter was trained on English questions too (its training record lists "en")."""
        try:
            info = json.loads((self.folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return "en" in (info.get("training") or {}).get("languages", ())

    @property
    def model(self) -> ReaderModel:
        """The loaded reader (LoRA merged, bf16 when the CPU has it), loaded on first use."""
        return self.load()

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._model is not None

    def load(self) -> ReaderModel:
        """Load the weights unless they are loaded (~3 s on two cores); return the model."""
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
        # Read in Simplified characters, as trained; the conversion keeps offsets, so spans still fit.
        q_ids = question_ids(model.tokenizer, to_simplified(question))
        passages = [to_simplified(p) for p in passages]
        windows = [encode(model.tokenizer, q_ids, p, _pieces(model.tokenizer, p), model.max_positions) for p in passages]
        return read_windows(model, windows)


@functools.lru_cache(maxsize=8192)
def _pieces_cached(tokenizer_id: int, tokenizer, passage: str) -> tuple:
    return tuple(tokenizer.pieces(passage))


def _pieces(tokenizer, passage: str) -> list:
    # Tokenizing is pure Python (~6 µs a character); the same sentences come back question after question.
    return list(_pieces_cached(id(tokenizer), tokenizer, passage))


def read_abstention(folder: Path) -> dict:
    """Return the abstention model saved in an adapter folder, or {} when there is none or it is unreadable."""
    try:
        data = json.loads((Path(folder) / ABSTENTION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    keys = ("weights", "bias", "threshold", "threshold_english")
    return {k: data[k] for k in keys if k in data and data[k] is not None} if isinstance(data, dict) else {}


def write_abstention(folder: Path, model: dict) -> Path:
    """Write the abstention model beside the adapter it was fitted for (atomically); return the file."""
    path = Path(folder) / ABSTENTION_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(model, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
