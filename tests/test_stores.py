"""The store registry (rag/index/stores/__init__.py) and what every registered backend does: publish a build
that loads and searches, leave the live build alone when a build fails; and the rest of rag/ picks a backend
only through the registry, never by comparing its name."""

import ast
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from rag.config import StoreConfig
from rag.index import IndexProblem, build_index, current_build, load_index, read_manifest
from rag.index.stores import DEFAULT_BACKEND, backend, backend_names, valid_entry
from rag.index.stores.faiss import FaissBackend, FaissBuild
from rag.retrieve import Retriever

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "重庆人工智能产业基金规模有多大？"


def _qdrant() -> StoreConfig:
    pytest.importorskip("qdrant_client")
    return StoreConfig(backend="qdrant", path=":memory:", collection=f"t{uuid.uuid4().hex[:8]}")


# How each registered backend is built in a test: adding a store adds its line here.
SETTINGS = {"faiss": StoreConfig, "qdrant": _qdrant}


def test_every_registered_backend_is_tested():
    assert set(SETTINGS) == set(backend_names()) and backend_names()[0] == DEFAULT_BACKEND


def _rebuilt(seeds_dir, seed_index_dir, embedder, folder: Path, store: StoreConfig) -> Path:
    shutil.copytree(seed_index_dir / "cache", folder / "cache")  # the embeddings come from the cache
    build_index(seeds_dir, folder, embedder, store=store)
    return folder


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_backend_publishes_a_build_that_loads_and_answers(name, tmp_path, seeds_dir, seed_index_dir, embedder,
                                                               seed_index):
    store = SETTINGS[name]()
    folder = _rebuilt(seeds_dir, seed_index_dir, embedder, tmp_path / "index", store)
    entry = read_manifest(folder)["store"]
    assert entry["backend"] == name and valid_entry(entry)
    index = load_index(folder, embedder)
    assert (index.dense.size, index.dense.dim, index.keywords.size) == (len(index.units), embedder.dim, len(index.chunks))
    rows = [0, len(index.units) // 2, len(index.units) - 1]
    scores, found = index.dense.search(index.dense.vectors(rows), 1)  # each finds itself (or its duplicate)
    assert scores[:, 0] == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(index.dense.vectors(found[:, 0]), index.dense.vectors(rows), atol=1e-5)
    position, _ = index.keywords.search("模力高地", 1)[0]
    assert "模力高地" in index.chunks[position].text
    ours = [h.chunk.id for h in Retriever(index).run(QUESTION, k=3)]
    assert ours == [h.chunk.id for h in Retriever(seed_index).run(QUESTION, k=3)]


class _Failing:
    """The session's embedder, failing as a Ctrl-C would once it has to embed a text the cache lacks."""

    def __init__(self, embedder):
        self.model_id, self.dim = embedder.model_id, embedder.dim

    def embed_passages(self, texts):
        raise KeyboardInterrupt


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_failed_build_leaves_the_live_build_answering_on_each_backend(name, tmp_path, seeds_dir, seed_index_dir,
                                                                       embedder):
    store = SETTINGS[name]()
    docs = tmp_path / "docs"
    shutil.copytree(seeds_dir, docs)
    folder = _rebuilt(docs, seed_index_dir, embedder, tmp_path / "index", store)
    live = current_build(folder)
    (docs / "005_new.txt").write_text("全新的文档：重庆火锅产业规模达到一千亿元。", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        build_index(docs, folder, _Failing(embedder), store=store)
    assert current_build(folder) == live and [p.name for p in (folder / "builds").iterdir()] == [live.name]
    index = load_index(folder, embedder)
    assert "005_new.txt" not in index.manifest["files"]
    assert Retriever(index).run(QUESTION, k=3)


def test_a_manifest_without_a_store_entry_is_read_as_faiss(index_copy, embedder):
    # Builds before issue 13 wrote no "store" entry: they are FAISS + bm25s.
    manifest = current_build(index_copy) / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    del data["store"]
    manifest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    index = load_index(index_copy, embedder)
    assert type(index.dense).__module__ == "rag.index.stores.faiss"
    assert Retriever(index).run(QUESTION, k=3)


@pytest.mark.parametrize("entry", [{"backend": "milvus"}, {}, ["faiss"], {"backend": "qdrant", "path": ":memory:"}])
def test_a_store_entry_of_no_known_backend_or_missing_fields_is_damage(entry, index_copy, embedder):
    manifest = current_build(index_copy) / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["store"] = entry
    manifest.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(IndexProblem, match=r"damaged \(manifest\.json: .*rag index"):
        load_index(index_copy, embedder)


def test_an_unknown_backend_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="unknown store backend 'milvus': use one of faiss, qdrant"):
        backend("milvus")
    with pytest.raises(ValueError, match="store backend must be one of faiss, qdrant, got 'milvus'"):
        StoreConfig(backend="milvus")
    assert StoreConfig() == StoreConfig(backend=DEFAULT_BACKEND)


# A store added by one registry line: FAISS + bm25s under another name, noting what the build asks of it.
CALLS: list[tuple[str, bool]] = []


class SpyBackend(FaissBackend):
    def build(self, config, index_dir):
        CALLS.clear()
        return SpyBuild(Path(index_dir))

    def load(self, entry, build):
        CALLS.append(("load", entry["spied"]))
        return super().load(entry, build)


class SpyBuild(FaissBuild):
    def __init__(self, index_dir: Path):
        super().__init__()
        self._index_dir = index_dir

    def _note(self, call: str) -> None:
        # Whether the index folder's CURRENT names the build being written when the store is called.
        pointer = self._index_dir / "CURRENT"
        CALLS.append((call, pointer.exists() and pointer.read_text().strip() == getattr(self, "_id", None)))

    def index_keywords(self, *args, **kwargs):
        self._note("index_keywords")
        super().index_keywords(*args, **kwargs)

    def publish(self, build):
        self._id = build.build_id
        self._note("publish")
        return {**super().publish(build), "spied": True}

    def switch(self):
        self._note("switch")

    def cancel(self):
        self._note("cancel")
        super().cancel()


def test_a_store_added_by_one_registry_line_is_built_switched_and_loaded(monkeypatch, tmp_path, seeds_dir,
                                                                         seed_index_dir, embedder):
    from rag.cli import _parser
    from rag.index import stores

    monkeypatch.setitem(stores._BACKENDS, "spy", "tests.test_stores:SpyBackend")
    assert _parser().parse_args(["index", "--store", "spy"]).store == "spy"  # the CLI's choices come from it
    folder = _rebuilt(seeds_dir, seed_index_dir, embedder, tmp_path / "index", StoreConfig(backend="spy"))
    # The store switches only once the index folder's CURRENT names the new build.
    assert CALLS == [("index_keywords", False), ("publish", False), ("switch", True)]
    assert read_manifest(folder)["store"] == {"backend": "spy", "spied": True}
    assert Retriever(load_index(folder, embedder)).run(QUESTION, k=3) and CALLS[-1] == ("load", True)
    with pytest.raises(KeyboardInterrupt):
        build_index(seeds_dir, tmp_path / "other", _Failing(embedder), store=StoreConfig(backend="spy"))
    assert CALLS == [("index_keywords", False), ("cancel", False)]


# Where a backend's name may be compared or offered as a choice: only in the stores' own package.
STORES = ROOT / "rag" / "index" / "stores"


def name_uses(source: str, names: set[str]) -> list[tuple[int, str]]:
    """Return (line, name) of each backend name compared, offered as a choice, or given as a backend."""
    found: dict[int, ast.Constant] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):  # x == "qdrant", x in ("faiss", "qdrant"), "qdrant" != x
            parts = [node.left, *node.comparators]
        elif isinstance(node, ast.keyword) and node.arg in ("choices", "backend", "default"):
            parts = [node.value]
        elif isinstance(node, ast.Dict):  # {"backend": "faiss"}
            parts = [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "backend"]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "backend"):
            parts = node.args[1:]  # entry.get("backend", "faiss")
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "backend":
            parts = [node.value] if node.value else []  # backend: str = "faiss"
        elif isinstance(node, ast.match_case):
            parts = [node.pattern]
        else:
            continue
        found.update((id(c), c) for part in parts for c in ast.walk(part)
                     if isinstance(c, ast.Constant) and c.value in names)
    return sorted((c.lineno, c.value) for c in found.values())


def test_the_scan_finds_comparisons_and_choices_but_not_library_names():
    names = set(backend_names())
    flagged = name_uses('if store.backend == "qdrant": pass\n'
                        'p.add_argument("--store", choices=("faiss", "qdrant"))\n'
                        'x = manifest.get("store", {"backend": "faiss"})\n'
                        'y = entry.get("backend", "faiss") in names\n', names)
    assert sorted(flagged) == [(1, "qdrant"), (2, "faiss"), (2, "qdrant"), (3, "faiss"), (4, "faiss")]
    assert name_uses('for noisy in ("faiss", "faiss.loader"):\n    logging.getLogger(noisy)\n'
                     'p.add_argument("--store", help="search backend, else faiss")\n'
                     'versions = machine(("numpy", "faiss"))\n', names) == []


def _benchmark(path: Path) -> bool:
    # The bench measures named backends side by side and reads results it wrote before it recorded one.
    return any(part.startswith("bench") for part in path.relative_to(ROOT / "rag").parts)


def test_no_backend_name_is_compared_or_offered_outside_the_stores_package():
    names = set(backend_names())
    found = [f"{path.relative_to(ROOT)}:{line}: {name}"
             for path in sorted((ROOT / "rag").rglob("*.py")) if STORES not in path.parents and not _benchmark(path)
             for line, name in name_uses(path.read_text(encoding="utf-8"), names)]
    assert found == []
