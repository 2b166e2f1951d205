"""Damaged index files: every one is refused on load with IndexProblem, `rag ask` prints one clean line
and `rag chat` rebuilds. Each case damages a private copy of the real seed index."""

import json
from pathlib import Path

import numpy as np
import pytest

from rag.index import IndexProblem, current_build, load_index

QUESTION = "重庆人工智能产业基金规模有多大"


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _json(data):
    return lambda path: path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _npy(change):
    return lambda path: np.save(path, change(np.load(path)))


def _drop_last_line(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")


def _edit_json(change):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    return edit


def _swap_vocab_ids(data: dict) -> None:
    first, second = list(data)[:2]
    data[first] = data[second]  # two tokens share a column; one column has no token


# (file relative to the live build, or "CURRENT" relative to the index folder; how it is damaged)
CASES = {
    "units.npy zero bytes": ("units.npy", _zero),
    "unit_vectors.npy zero bytes": ("unit_vectors.npy", _zero),
    "bm25 data zero bytes": ("bm25/data.csc.index.npy", _zero),
    "bm25 indices zero bytes": ("bm25/indices.csc.index.npy", _zero),
    "bm25 indptr zero bytes": ("bm25/indptr.csc.index.npy", _zero),
    "vectors.faiss zero bytes": ("vectors.faiss", _zero),
    "manifest.json is []": ("manifest.json", _json([])),
    "manifest.json is {}": ("manifest.json", _json({})),
    "manifest counts disagree": ("manifest.json", _edit_json(lambda m: m["counts"].update(chunks=71))),
    "manifest files disagree": ("manifest.json", _edit_json(lambda m: m["files"].popitem())),
    "documents.json is {}": ("documents.json", _json({})),
    "documents.json is []": ("documents.json", _json([])),
    "documents.json lost a document": ("documents.json", _edit_json(lambda d: d.pop())),
    "chunks.jsonl empty": ("chunks.jsonl", _zero),
    "chunks.jsonl lost its last line": ("chunks.jsonl", _drop_last_line),
    "chunks.jsonl holds a list": ("chunks.jsonl", lambda p: p.write_text("[1, 2]\n" * 72, encoding="utf-8")),
    "bm25 params is []": ("bm25/params.index.json", _json([])),
    "bm25 params is {}": ("bm25/params.index.json", _json({})),
    "bm25 params k1 is text": ("bm25/params.index.json", _edit_json(lambda p: p.update(k1="x"))),
    "bm25 params num_docs wrong": ("bm25/params.index.json", _edit_json(lambda p: p.update(num_docs=7))),
    "bm25 vocab is []": ("bm25/vocab.index.json", _json([])),
    "bm25 vocab is {}": ("bm25/vocab.index.json", _json({})),
    "bm25 vocab ids not one per column": ("bm25/vocab.index.json", _edit_json(_swap_vocab_ids)),
    "bm25 indptr truncated": ("bm25/indptr.csc.index.npy", _npy(lambda a: a[:-5])),
    "bm25 indices out of range": ("bm25/indices.csc.index.npy", _npy(lambda a: a + 1000)),
    "units.npy has two columns": ("units.npy", _npy(lambda a: a[:, :2])),
    "units.npy lost rows": ("units.npy", _npy(lambda a: a[:-3])),
    "units.npy points past the chunks": ("units.npy", _npy(lambda a: a + np.array([100, 0, 0], dtype=a.dtype))),
    "unit_vectors.npy lost a column": ("unit_vectors.npy", _npy(lambda a: a[:, :-1])),
    "unit_vectors.npy lost rows": ("unit_vectors.npy", _npy(lambda a: a[:-1])),
    "userdict.txt zero bytes": ("userdict.txt", _zero),
    "CURRENT random bytes": ("CURRENT", lambda p: p.write_bytes(bytes(range(256)) * 2)),
    "CURRENT points outside builds": ("CURRENT", lambda p: p.write_text("../../\n", encoding="utf-8")),
    "CURRENT empty": ("CURRENT", _zero),
}


def _damage(index_dir: Path, case: str) -> None:
    name, damage = CASES[case]
    damage(index_dir / name if name == "CURRENT" else current_build(index_dir) / name)


@pytest.fixture()
def quick_embedder(monkeypatch, embedder):
    """Commands load the session's embedder instead of a fresh one (same model, no load time)."""
    monkeypatch.setattr("rag.index.live.make_embedder", lambda *a, **k: embedder)
    monkeypatch.setattr("rag.kb.make_embedder", lambda *a, **k: embedder)
    return embedder


def test_the_undamaged_copy_loads(index_copy, embedder):
    assert len(load_index(index_copy, embedder).chunks) == 72


@pytest.mark.parametrize("case", list(CASES))
def test_load_index_refuses_damage_with_a_clear_message(case, index_copy, embedder):
    _damage(index_copy, case)
    with pytest.raises(IndexProblem, match=r"rag index"):
        load_index(index_copy, embedder)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("unit_vectors.npy", "vectors.faiss"))])
def test_the_message_names_the_damaged_store_file(case, index_copy, embedder):
    _damage(index_copy, case)
    other = "vectors.faiss" if case.startswith("unit_vectors.npy") else "unit_vectors.npy"
    with pytest.raises(IndexProblem) as caught:
        load_index(index_copy, embedder)
    assert f"({CASES[case][0]}:" in str(caught.value) and f"({other}:" not in str(caught.value)


@pytest.mark.parametrize("case", list(CASES))
def test_rag_ask_prints_one_line_for_damage(case, docs_copy, index_copy, quick_embedder, capsys):
    from rag.cli import main

    _damage(index_copy, case)
    assert main(["ask", QUESTION, "--docs", str(docs_copy), "--index", str(index_copy)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and "rag index" in captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1


# The damage the issue lists (each start rebuilds, so not every case: the rebuilt index is the same).
CHAT_CASES = ["units.npy zero bytes", "unit_vectors.npy zero bytes", "bm25 data zero bytes", "manifest.json is []",
              "documents.json is {}", "chunks.jsonl empty", "bm25 params is []", "bm25 vocab is []",
              "bm25 vocab is {}", "CURRENT random bytes"]


@pytest.mark.parametrize("case", CHAT_CASES)
def test_rag_chat_rebuilds_a_damaged_index(case, docs_copy, index_copy, quick_embedder, monkeypatch, capsys):
    from rag.cli import main

    served = []
    monkeypatch.setattr("rag.app.serve", lambda kb, host, port, **_: served.append(kb))
    _damage(index_copy, case)
    assert main(["chat", "--docs", str(docs_copy), "--index", str(index_copy)]) == 0
    err = capsys.readouterr().err
    assert "the index cannot be used" in err and "rebuilding it" in err
    assert len(served[0].index.chunks) == 72
    assert len(load_index(index_copy, quick_embedder).chunks) == 72


def test_rag_ask_in_a_fresh_process_prints_no_traceback(docs_copy, index_copy):
    import subprocess
    import sys

    _damage(index_copy, "bm25 vocab is {}")
    done = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", QUESTION, "--docs", str(docs_copy), "--index", str(index_copy)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
