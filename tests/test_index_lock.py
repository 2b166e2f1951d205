"""Builds of one index folder take turns across processes, and what a killed build leaves is cleaned up.

The builder processes are real (`python -c`), with a hashed stand-in embedder: this is plumbing, and the
model's speed would only make the waits longer.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.index import IndexBusy, build_index, build_lock, clean_leftovers, current_build, load_index

ROOT = Path(__file__).resolve().parents[1]
EMBEDDER = '''
import hashlib, sys, time
import numpy as np

class Hashed:
    model_id, dim, batch_size = "test/hashed", 8, 4

    def __init__(self, stall_on_call=None, stall_seconds=600):
        self.calls, self.texts, self.stall_on_call, self.stall_seconds = 0, 0, stall_on_call, stall_seconds

    def embed_passages(self, texts):
        self.calls += 1
        if self.calls == self.stall_on_call:
            print("stalled", flush=True)
            time.sleep(self.stall_seconds)
        self.texts += len(texts)
        rows = [np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=8) for t in texts]
        rows = np.asarray(rows, dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    embed_queries = embed_passages
'''
namespace: dict = {}
exec(EMBEDDER, namespace)
Hashed = namespace["Hashed"]

SENTENCES = ["重庆发布人工智能产业新政策，支持企业建设算力中心。", "两江新区新增十家智能制造示范工厂。",
             "南岸区的模力高地社区吸引了四十家企业入驻。", "产业基金重点投向大模型和智能网联汽车。",
             "市经信委表示将继续发放算力券。", "全市人工智能核心产业规模持续增长。",
             "多所高校开设了人工智能相关专业。", "智能终端制造成为新的增长点。"]


@pytest.fixture()
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(3):  # one chunk and eight sentences each: 27 embedded units, too few for the BM25 helper
        text = f"重庆人工智能简报第{n + 1}期\n\n" + "".join(f"{s[:-1]}，见第{n + 1}期。" for s in SENTENCES)
        (folder / f"00{n}_report.txt").write_text(text, encoding="utf-8")
    return folder


def _start(code: str, *args: Path) -> subprocess.Popen:
    """Start a Python process running `code` (with the Hashed embedder defined); wait for its first line."""
    process = subprocess.Popen([sys.executable, "-c", EMBEDDER + code, *map(str, args)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    process.ready = process.stdout.readline().strip()
    return process


HOLD_LOCK = '''
from rag.index import build_lock
with build_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
'''

STALLED_BUILD = '''
import rag.embed
rag.embed.SAVE_EVERY = 4  # a cache step after every batch of 4 texts
from rag.index import build_index
build_index(sys.argv[1], sys.argv[2], Hashed(int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 600))
print("built", flush=True)
'''


def test_a_second_builder_gives_up_naming_the_holder_then_builds_once_it_is_gone(docs, tmp_path):
    index = tmp_path / "index"
    holder = _start(HOLD_LOCK, index)
    try:
        assert holder.ready == "held"
        began = time.monotonic()
        with pytest.raises(IndexBusy, match=rf"another build of .* is running \(pid {holder.pid}, since .*gave up after 1 s"):
            build_index(docs, index, Hashed(), lock_timeout=1)
        assert time.monotonic() - began < 60
        assert not (index / "CURRENT").exists()
    finally:
        holder.kill()  # kill -9: the kernel releases its lock
        holder.wait()
    report = build_index(docs, index, Hashed(), lock_timeout=60)
    assert report.chunks == 3 and load_index(index, Hashed()).chunks


def test_a_second_builder_waits_for_the_first_then_both_builds_hold(docs, tmp_path, caplog):
    index = tmp_path / "index"
    build_index(docs, index, Hashed())
    (docs / "003_new.txt").write_text("新增简报\n\n" + "".join(SENTENCES), encoding="utf-8")
    # The first builder stalls for 3 s on its second batch of the new document's texts, holding the lock.
    first = _start(STALLED_BUILD, docs, index, 2, 3)
    try:
        assert first.ready == "stalled"
        with caplog.at_level("WARNING", logger="rag.index"):
            report = build_index(docs, index, Hashed(), lock_timeout=300)
        assert first.stdout.readline().strip() == "built"  # it finished, then the second one went ahead
        first.wait(timeout=120)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0
    assert f"waiting for another build of {index} (pid {first.pid}" in caplog.text
    assert report.documents == 4 and report.embedded == 0  # the first build's vectors were cached
    assert [p.name for p in (index / "builds").iterdir()] == [current_build(index).name]
    assert len(load_index(index, Hashed()).documents) == 4


def test_a_killed_build_leaves_its_embedding_steps_and_its_leftovers_go_at_the_next_build(docs, tmp_path):
    index = tmp_path / "index"
    killed = _start(STALLED_BUILD, docs, index, 5)  # stalls after four batches: 16 of 27 texts embedded
    assert killed.ready == "stalled"
    killed.kill()
    killed.wait()
    assert [p.name[:5] for p in (index / "builds").iterdir()] == [".tmp-"]
    assert len(list((index / "cache").glob("*.part-*.npz"))) == 4
    (index / ".CURRENT-abc123").write_text("x\n", encoding="utf-8")  # as a kill inside the switch leaves

    embedder = Hashed()
    report = build_index(docs, index, embedder)
    assert embedder.texts == report.embedded == report.units - 16
    assert [p.name for p in (index / "builds").iterdir()] == [current_build(index).name]
    assert not list(index.glob(".CURRENT-*")) and not list((index / "cache").glob("*.part-*"))
    assert json.loads((index / "build.lock").read_text() or "{}") == {}  # a finished build leaves no holder


def test_clean_leftovers_leaves_a_running_build_alone(docs, tmp_path):
    index = tmp_path / "index"
    build_index(docs, index, Hashed())
    leftover = index / "builds" / ".tmp-20260101-000000-abcdef"
    leftover.mkdir()
    holder = _start(HOLD_LOCK, index)
    try:
        assert holder.ready == "held"
        assert clean_leftovers(index) == [] and leftover.exists()  # it may be the running build's folder
    finally:
        holder.kill()
        holder.wait()
    assert clean_leftovers(index) == [leftover] and not leftover.exists()
    assert clean_leftovers(tmp_path / "nothing") == [] and not (tmp_path / "nothing").exists()


def test_build_lock_refuses_a_negative_timeout(tmp_path):
    with pytest.raises(ValueError, match="timeout"):
        with build_lock(tmp_path, timeout=-1):
            pass


def test_rag_chat_start_removes_what_killed_builds_and_deletes_left(docs, tmp_path, monkeypatch):
    from rag.cli import main

    index = tmp_path / "index"
    build_index(docs, index, Hashed())
    temporary = index / "builds" / ".tmp-20260101-000000-abcdef"
    temporary.mkdir()
    half_deleted = docs / ".000_report.txt.0123abcd.deleted"
    (docs / "000_report.txt").rename(half_deleted)  # a delete killed during its rebuild
    keep = docs / ".notes.deleted"  # not a name `delete` makes
    keep.write_text("x", encoding="utf-8")
    served = []
    monkeypatch.setattr("rag.app.serve", lambda kb, host, port, **_: served.append(kb))
    monkeypatch.setattr("rag.index.live.make_embedder", lambda *a, **k: Hashed())
    monkeypatch.setattr("rag.kb.make_embedder", lambda *a, **k: Hashed())
    assert main(["chat", "--docs", str(docs), "--index", str(index)]) == 0
    assert not temporary.exists() and not half_deleted.exists() and keep.exists()
    assert served


def test_clean_leftovers_gives_up_quietly_where_it_cannot_lock(docs, tmp_path):
    index = tmp_path / "index"
    build_index(docs, index, Hashed())
    (index / "build.lock").unlink()
    (index / "build.lock").mkdir()  # stands for an index this user may read but not write
    assert clean_leftovers(index) == []
    assert load_index(index, Hashed()).chunks  # serving it needs no lock
