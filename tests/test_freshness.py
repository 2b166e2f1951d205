"""Noticing a newer build or changed documents under a running server, without hashing every file each time."""

from __future__ import annotations

import os

from rag import freshness
from rag.freshness import FreshnessCheck
from rag.index import build_index, current_build, read_manifest


def test_a_check_hashes_only_files_that_moved_and_names_what_changed(docs_copy, index_copy, monkeypatch):
    build, manifest = current_build(index_copy), read_manifest(index_copy)
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(build, manifest) == freshness.DiskState()  # the seeds as indexed
    hashed = []
    real = freshness.file_digest
    monkeypatch.setattr(freshness, "file_digest", lambda path: hashed.append(1) or real(path))
    check.check(build, manifest)
    assert hashed == []  # nothing moved: nothing hashed
    edited = sorted(docs_copy.glob("*.txt"))[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\n新加的一句。\n", encoding="utf-8")
    (docs_copy / "new.txt").write_text("新文档\n\n内容。\n", encoding="utf-8")
    removed = sorted(docs_copy.glob("*.txt"))[0]
    removed.unlink()
    state = check.check(build, manifest)
    assert len(hashed) == 1  # the edited file only: a new one needs only to be there, the other three did not move
    assert (state.changed, state.added, state.removed) == ((edited.name,), ("new.txt",), (removed.name,))
    # Touched but unchanged text: hashed once again, and not reported.
    # (An indexed file: a new one is never hashed, it needs only to be there.)
    untouched = next(p for p in sorted(docs_copy.glob("*.txt")) if p.name not in (edited.name, "new.txt"))
    os.utime(untouched, ns=(1, 1))
    hashed.clear()
    assert check.check(build, manifest).changed == (edited.name,) and len(hashed) == 1


def test_a_new_file_seen_before_a_build_indexed_it_is_not_reported_once_indexed(docs_copy, index_copy, embedder):
    # A file first seen unindexed is not hashed; once a newer build indexes it, the old "not hashed"
    # mark made it look changed, and the page kept offering an update the new build had done.
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    (docs_copy / "new.txt").write_text("新文档\n\n内容是一句话。\n", encoding="utf-8")
    assert check.check(current_build(index_copy), read_manifest(index_copy)).added == ("new.txt",)
    build_index(docs_copy, index_copy, embedder)
    state = check.check(current_build(index_copy), read_manifest(index_copy))
    assert (state.changed, state.added, state.removed) == ((), (), ())


def test_a_build_by_another_process_is_seen(docs_copy, index_copy, embedder):
    loaded = current_build(index_copy)
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(loaded, read_manifest(index_copy)).newer_build == ""
    build_index(docs_copy, index_copy, embedder)
    assert check.check(loaded, read_manifest(index_copy)).newer_build == current_build(index_copy).name


def test_the_knowledge_base_adopts_a_newer_build_and_keeps_its_own(docs_copy, index_copy, embedder):
    from rag.gloss import cached_glossary
    from rag.kb import KnowledgeBase

    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    assert kb.adopt_newer_build() is None  # nothing newer
    (docs_copy / "ferry.txt").write_text("嘉陵江智能渡轮\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    build_index(docs_copy, index_copy, embedder)
    adopted = kb.adopt_newer_build()
    assert adopted is not None and kb.index is adopted and len(adopted.documents) == 6
    assert cached_glossary(adopted.keywords) is not None  # built before the swap, not on a question


def test_a_converted_document_with_its_metadata_file_is_not_seen_as_changed(docs_copy, index_copy, embedder):
    # Issue 15: the index hashes a converted .txt together with its .meta.json; so must the check.
    # (Uploads stored such pairs before issue 36; they keep their originals now, as the second part checks.)
    from rag.kb import KnowledgeBase, prepare_upload
    from tests.documents import docx_with_table

    old = prepare_upload("渡轮.docx", docx_with_table())
    (docs_copy / "渡轮.txt").write_bytes(old.data)
    (docs_copy / "渡轮.meta.json").write_bytes(old.meta)
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.rebuild()
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(current_build(index_copy), read_manifest(index_copy)).changed == ()
    meta = docs_copy / "渡轮.meta.json"
    meta.write_text(meta.read_text(encoding="utf-8").replace("嘉陵江渡轮一览", "改过的标题"), encoding="utf-8")
    assert check.check(current_build(index_copy), read_manifest(index_copy)).changed == ("渡轮.txt",)


def test_an_uploaded_original_is_not_seen_as_changed_until_it_is_edited(docs_copy, index_copy, embedder):
    from rag.kb import KnowledgeBase
    from tests.documents import docx_with_table

    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    kb.add("渡轮.docx", docx_with_table())
    check = FreshnessCheck(docs_copy, index_copy, min_interval=0)
    assert check.check(current_build(index_copy), read_manifest(index_copy)).changed == ()
    original = docs_copy / "渡轮.docx"
    original.write_bytes(original.read_bytes() + b"\0")
    assert check.check(current_build(index_copy), read_manifest(index_copy)).changed == ("渡轮.docx",)
