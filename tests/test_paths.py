"""Where the knowledge base lives: a data folder outside the checkout, seeded from `seeds/` once."""

from __future__ import annotations

from pathlib import Path

from rag.paths import SEEDS, data_home, default_docs_dir, default_index_dir


def test_the_data_folder_is_rag_home_else_xdg_data_home_else_local_share(tmp_path):
    assert data_home({"RAG_HOME": str(tmp_path / "kb"), "XDG_DATA_HOME": "/xdg"}) == tmp_path / "kb"
    assert data_home({"XDG_DATA_HOME": "/xdg"}) == Path("/xdg/wenyu")
    assert data_home({"XDG_DATA_HOME": "relative"}) == Path.home() / ".local" / "share" / "wenyu"
    assert data_home({}) == Path.home() / ".local" / "share" / "wenyu"


def test_the_default_folders_are_under_the_data_folder_unless_named(tmp_path):
    env = {"RAG_HOME": str(tmp_path)}
    assert default_index_dir(env) == tmp_path / "index"
    assert default_index_dir({**env, "RAG_INDEX": str(tmp_path / "elsewhere")}) == tmp_path / "elsewhere"
    assert default_docs_dir(env) == tmp_path / "documents"


def test_the_first_use_copies_the_seeds_once_and_never_writes_to_them(tmp_path, capsys):
    env = {"RAG_HOME": str(tmp_path)}
    before = {p.name: p.read_bytes() for p in SEEDS.iterdir()}
    docs = default_docs_dir(env)
    assert {p.name: p.read_bytes() for p in docs.iterdir()} == before
    assert "新建知识库" in capsys.readouterr().err and not list(tmp_path.glob(".documents-*"))
    (docs / "000_c28048898250d032.txt").unlink()  # the user's deletions stay deleted
    assert default_docs_dir(env) == docs and len(list(docs.iterdir())) == len(before) - 1
    assert capsys.readouterr().err == ""
    assert {p.name: p.read_bytes() for p in SEEDS.iterdir()} == before


def test_a_named_documents_folder_is_used_as_it_is(tmp_path):
    env = {"RAG_HOME": str(tmp_path / "home"), "RAG_DOCS": str(tmp_path / "mine")}
    assert default_docs_dir(env) == tmp_path / "mine"
    assert not (tmp_path / "mine").exists() and not (tmp_path / "home").exists()
