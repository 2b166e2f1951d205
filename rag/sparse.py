"""BM25 over normalized jieba tokens, with bm25s."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rag import text as textmod

BM25_FOLDER = "bm25"


def _bm25s():
    try:
        import bm25s
    except ImportError as exc:
        raise RuntimeError("BM25 needs bm25s: pip install bm25s") from exc
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Index:
    """A BM25 index over chunk texts; scores a query's tokens against every chunk."""

    def __init__(self, retriever, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        """Return an index of `texts`, tokenized with the project tokenizer."""
        retriever = _bm25s().BM25(k1=k1, b=b)
        # bm25s refuses an empty document; a placeholder token keeps positions aligned.
        corpus = [textmod.tokenize(t) or ["\u2400"] for t in texts]
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(texts))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (chunk index, score) pairs, best first; none when no query token is known."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        tokens = [t for t in textmod.tokenize(query) if t in self._retriever.vocab_dict]
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(i), float(scores[i])) for i in order if scores[i] > 0]

    def knows(self, token: str) -> bool:
        """True when some indexed chunk contains `token`."""
        return token in self._retriever.vocab_dict

    def idf(self, token: str) -> float:
        """Return log((N + 1) / (df + 0.5)) of a normalized token; unseen tokens get the highest value."""
        if not hasattr(self, "_df"):
            indptr = np.asarray(self._retriever.scores["indptr"])
            self._df = np.diff(indptr)
        column = self._retriever.vocab_dict.get(token)
        df = int(self._df[column]) if column is not None and column < len(self._df) else 0
        return float(np.log((self.size + 1) / (df + 0.5)))

    def save(self, folder: Path) -> None:
        """Write the index under folder/bm25."""
        self._retriever.save(str(Path(folder) / BM25_FOLDER), show_progress=False)

    @classmethod
    def load(cls, folder: Path, size: int) -> BM25Index:
        """Return the index saved under folder/bm25."""
        retriever = _bm25s().BM25.load(str(Path(folder) / BM25_FOLDER), show_progress=False)
        return cls(retriever, size)


def build_and_save(texts: list[str], words: list[str], folder: Path) -> None:
    """Teach the tokenizer `words`, index `texts` and save the index under `folder`."""
    textmod.add_words(words)
    BM25Index.build(texts).save(folder)


class BackgroundBuild:
    """`build_and_save` in another Python process, so jieba's Python-bound work runs beside the embedding.

    A fresh interpreter rather than multiprocessing: forking a process that holds threads (a web
    server, torch's pools) can deadlock the child, and "spawn" re-runs the caller's script.
    """

    def __init__(self, texts: list[str], words: list[str], folder: Path) -> None:
        import json
        import subprocess
        import sys

        self._args = (texts, words, Path(folder))
        self._input = Path(folder) / "bm25-input.json"
        self._input.write_text(json.dumps({"texts": texts, "words": words}, ensure_ascii=False), encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rag.sparse", str(self._input), str(folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        """Return once the index is saved; if the other process failed, build it here instead."""
        code = self._process.wait()
        self._input.unlink(missing_ok=True)
        if code != 0:
            build_and_save(*self._args)  # raises the real error, if there is one

    def cancel(self) -> None:
        """Stop the other process (the build it belongs to failed)."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._input.unlink(missing_ok=True)


def _main(argv: list[str]) -> None:
    import json

    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    build_and_save(data["texts"], data["words"], Path(argv[1]))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
