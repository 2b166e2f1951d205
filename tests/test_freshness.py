"""Noticing a newer build or changed documents under a running server, without hashing every file each time."""

from __future__ import annotations

import hashlib
import os

from rag import freshness
from rag.freshness import FreshnessCheck
from rag.index import build_index, current_build, read_manifest


def test_a_check_hashes_only_files_that_moved_and_names_what_changed(docs_copy, index_copy, monkeypatch):
    build, manifest = current_build(index_copy), read_manifest(index_copy)
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(build, manifest) == freshness.DiskState()  # the seeds as indexed
    hashed = []
    real = hashlib.sha256
    monkeypatch.setattr(freshness.hashlib, "sha256", lambda data=b"": hashed.append(1) or real(data))
    check.check(build, manifest)
    assert hashed == []  # nothing moved: nothing hashed
    edited = sorted(docs_copy.glob("*.txt"))[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\n新加的一句。\n", encoding="utf-8")
    (docs_copy / "new.txt").write_text("新文档\n\n内容。\n", encoding="utf-8")
    removed = sorted(docs_copy.glob("*.txt"))[0]
    removed.unlink()
    state = check.check(build, manifest)
    assert len(hashed) == 2  # the edited file and the new one, not the other three
    assert (state.changed, state.added, state.removed) == ((edited.name,), ("new.txt",), (removed.name,))
    # Touched but unchanged text: hashed once again, and not reported.
    os.utime(sorted(docs_copy.glob("*.txt"))[-1], ns=(1, 1))
    hashed.clear()
    assert check.check(build, manifest).changed == (edited.name,) and len(hashed) == 1


def test_a_build_by_another_process_is_seen(docs_copy, index_copy, embedder):
    loaded = current_build(index_copy)
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(loaded, read_manifest(index_copy)).newer_build == ""
    build_index(docs_copy, index_copy, embedder)
    assert check.check(loaded, read_manifest(index_copy)).newer_build == current_build(index_copy).name


def test_the_knowledge_base_adopts_a_newer_build_and_keeps_its_own(docs_copy, index_copy, embedder):
    from rag.kb import KnowledgeBase

    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    assert kb.adopt_newer_build() is None  # nothing newer
    (docs_copy / "ferry.txt").write_text("嘉陵江智能渡轮\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    build_index(docs_copy, index_copy, embedder)
    adopted = kb.adopt_newer_build()
    assert adopted is not None and kb.index is adopted and len(adopted.documents) == 6
