"""The bm25s keyword store: BM25 over normalized jieba tokens, saved in the build folder."""

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
        # bm25s refuses an empty document; a placeholder token keeps positions aligned.
        return cls.from_tokens([textmod.tokenize(t) or ["\u2400"] for t in texts], k1, b)

    @classmethod
    def from_tokens(cls, corpus: list[list[str]], k1: float = 1.2, b: float = 0.75) -> BM25Index:
        """Return an index of documents already tokenized (each with at least one token)."""
        retriever = _bm25s().BM25(k1=k1, b=b)
        retriever.index(corpus, show_progress=False)
        return cls(retriever, len(corpus))

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
        """Return the index saved under folder/bm25; raise ValueError unless it indexes `size` texts."""
        retriever = _bm25s().BM25.load(str(Path(folder) / BM25_FOLDER), show_progress=False)
        check_saved(retriever, size)
        return cls(retriever, size)


_METHODS = ("robertson", "lucene", "atire", "bm25l", "bm25+")


def check_saved(retriever, size: int) -> None:
    """Raise ValueError unless a loaded bm25s index is whole: parameters, vocabulary and matrix agree.

    bm25s loads a file of the wrong shape without complaint (`vocab.index.json` = {} only makes every
    query find nothing), so each part is checked against the others and against `size`.
    """
    def number(name: str, low: float, high: float) -> None:
        value = getattr(retriever, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ValueError(f"parameter {name} is {value!r}")

    number("k1", 0, 1e6)
    number("b", 0, 1)
    number("delta", 0, 1e6)
    for name in ("method", "idf_method"):
        if getattr(retriever, name, None) not in _METHODS:
            raise ValueError(f"parameter {name} is {getattr(retriever, name, None)!r}")
    if (np.dtype(retriever.dtype).kind != "f" or np.dtype(retriever.int_dtype).kind not in "iu"
            or retriever.backend not in ("numpy", "numba")):
        raise ValueError("its dtype or backend parameter is wrong")
    scores = retriever.scores
    if isinstance(scores.get("num_docs"), bool) or scores.get("num_docs") != size:
        raise ValueError(f"it indexes {scores.get('num_docs')!r} texts, not {size}")
    data, indices, indptr = (np.asarray(scores[k]) for k in ("data", "indices", "indptr"))
    if not (data.ndim == indices.ndim == indptr.ndim == 1 and data.dtype.kind == "f"
            and indices.dtype.kind in "iu" and indptr.dtype.kind in "iu"):
        raise ValueError("its score matrix has the wrong shape or type")
    vocab = retriever.vocab_dict
    if not isinstance(vocab, dict):
        raise ValueError("its vocabulary is not a mapping")
    ids = np.fromiter((v if type(v) is int else -1 for v in vocab.values()), dtype=np.int64, count=len(vocab))
    # Every token owns one matrix column and every column one token; each text has a token (see build).
    # bm25s adds the empty token "" last, with no column of its own.
    columns = len(indptr) - 1
    if (not np.array_equal(np.sort(ids), np.arange(len(vocab))) or columns < int(size > 0)
            or not (len(vocab) == columns or (len(vocab) == columns + 1 and vocab.get("") == columns))):
        raise ValueError(f"its vocabulary ({len(vocab)} tokens) does not match its {max(columns, 0)} columns")
    if (indptr[0] != 0 or indptr[-1] != len(data) or len(indices) != len(data) or np.any(np.diff(indptr) < 0)
            or (len(indices) and (indices.min() < 0 or indices.max() >= size)) or not np.isfinite(data).all()):
        raise ValueError("its score matrix is inconsistent")


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
        import os
        import subprocess
        import sys

        self._args = (texts, words, Path(folder))
        self._input = Path(folder) / "bm25-input.json"
        self._input.write_text(json.dumps({"texts": texts, "words": words}, ensure_ascii=False), encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "rag.index.stores.bm25", str(self._input), str(folder), str(os.getpid())],
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


def _die_with_parent(parent: int) -> None:
    """End this process as soon as `parent` is gone: a killed build must not leave its helper running
    (BackgroundBuild's caller waits for it on the thread that started it, as PR_SET_PDEATHSIG needs)."""
    import os
    import signal

    from rag.lifetime import tie_to_parent

    if not tie_to_parent(parent, signal.SIGKILL, poll_seconds=0.5):
        os._exit(1)


def _main(argv: list[str]) -> None:
    import json

    if len(argv) > 2:
        _die_with_parent(int(argv[2]))
    data = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    build_and_save(data["texts"], data["words"], Path(argv[1]))


if __name__ == "__main__":
    import sys

    _main(sys.argv[1:])
