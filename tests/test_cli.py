"""The `rag` command's own behaviour: what it prints to a terminal."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rag.cli import main

ROOT = Path(__file__).resolve().parents[1]

CONTROL = ("\x1b", "\x07", "\x9b", "\r")


def test_control_sequences_are_escaped_not_sent_to_the_terminal(tmp_path, capsys):
    # A path (or question, or document text) carrying ESC ] 0 ; … BEL would retitle the terminal.
    missing = tmp_path / "idx\x1b]0;pwned\x07\x9b2J\r"
    assert main(["ask", "问题", "--index", str(missing), "--docs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert not any(c in err for c in CONTROL)
    assert "\\u001b]0;pwned\\u0007\\u009b2J\\u000d" in err


def test_a_question_with_control_sequences_is_answered_without_echoing_them(seed_index_dir, seeds_dir, capsys):
    question = "重庆\x1b]52;c;cHduZWQ=\x07人工智能产业基金\x1b[2J规模有多大"
    assert main(["ask", question, "--index", str(seed_index_dir), "--docs", str(seeds_dir)]) == 0
    out, err = capsys.readouterr()
    assert not any(c in out + err for c in CONTROL)


# --- default folders: the data folder, never the checkout ------------------------------------------


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _git_status() -> str:
    # Compared before and after rather than required empty: a developer's own edits are not the test's.
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "seeds", "index"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture()
def rag_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.delenv("RAG_DOCS", raising=False)
    monkeypatch.delenv("RAG_INDEX", raising=False)
    return home


def test_rag_index_without_folders_builds_in_the_data_folder_and_leaves_the_checkout_alone(
        rag_home, seed_index_dir, monkeypatch, capsys):
    from rag.index import load_index

    monkeypatch.chdir(ROOT)  # where the old defaults, seeds/ and index/, pointed
    before = _snapshot(ROOT / "seeds"), _snapshot(ROOT / "index"), _git_status()
    shutil.copytree(seed_index_dir / "cache", rag_home / "index" / "cache")  # only to skip embedding again
    assert main(["index"]) == 0
    assert (_snapshot(ROOT / "seeds"), _snapshot(ROOT / "index"), _git_status()) == before
    seeds = sorted(p.name for p in (ROOT / "seeds").iterdir())
    assert sorted(p.name for p in (rag_home / "documents").iterdir()) == seeds
    assert len(load_index(rag_home / "index").documents) == len(seeds) == 5
    out, err = capsys.readouterr()
    assert "新建知识库" in err and str(rag_home / "index") in out


@pytest.mark.parametrize("flags, env, expected", [
    ([], {}, ("home/documents", "home/index")),
    ([], {"RAG_DOCS": "mine", "RAG_INDEX": "my-index"}, ("mine", "my-index")),
    (["--docs", "flag", "--index", "flag-index"], {"RAG_DOCS": "mine", "RAG_INDEX": "my-index"},
     ("flag", "flag-index")),
])
def test_folders_named_by_flag_or_environment_win_over_the_data_folder(rag_home, tmp_path, monkeypatch, flags, env,
                                                                        expected):
    seen = []
    monkeypatch.setattr("rag.cli.cmd_search", lambda args: seen.append((args.docs, args.index)) or 0)
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    assert main(["search", "问题", *[str(tmp_path / f) if f[0] != "-" else f for f in flags]]) == 0
    assert seen == [tuple(tmp_path / e for e in expected)]
    # The data folder is made (and seeded) only when its documents folder is the one used.
    assert (rag_home / "documents").exists() == (expected[0] == "home/documents")


@pytest.mark.parametrize("argv", [["search", "算力券", "-k", "0"], ["ask", "算力券", "-k", "-3"],
                                  ["search", "算力券", "-k", "五"], ["eval", "-k", "0"]])
def test_a_k_below_one_is_refused_by_the_cli(argv, capsys):
    from rag.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "-k/--k: must be" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["ask", "算力券", "-k", "51"], ["search", "算力券", "-k", "1000"]])
def test_a_k_over_the_pages_cap_is_refused_by_the_cli(argv, capsys):
    # `-k 51` was accepted silently, where the page and its API stop at 50.
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "-k/--k: must be at most 50" in capsys.readouterr().err


def test_an_answer_piped_into_a_reader_that_stops_early_ends_quietly(docs_copy, index_copy):
    # `rag ask --json … | head` ended in a BrokenPipeError traceback.
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "ask", "重庆人工智能产业基金规模有多大？", "--json",
         "--docs", str(docs_copy), "--index", str(index_copy)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the answer is written
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err.decode("utf-8", "replace") and "BrokenPipe" not in err.decode("utf-8", "replace")
    assert process.returncode == 0


@pytest.mark.parametrize("command", ["ask", "search"])
def test_a_documents_folder_that_is_not_there_is_named_not_compared(command, seed_index_dir, tmp_path, capsys):
    # `rag ask --docs /nonexistent` answered from the index with a misleading "7 files removed" warning.
    missing = tmp_path / "no-such-folder"
    assert main([command, "算力券是什么？", "--docs", str(missing), "--index", str(seed_index_dir)]) == 2
    err = capsys.readouterr().err
    assert f"no documents folder at {missing}" in err and "removed" not in err
