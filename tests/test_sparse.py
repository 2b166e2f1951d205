import sys

import pytest

from rag.index.stores.bm25 import BackgroundBuild, BM25Index, build_and_save

TEXTS = [
    "重庆人工智能产业基金规模达到一百亿元，重点投向大模型与算力。",
    "模力高地社区在南岸区正式投用，首批入驻企业四十家。",
    "算力券用于降低中小企业使用智能算力的成本。",
    "赛力斯超级工厂有三千多台机器人，关键工序自动化率百分之百。",
]
WORDS = ["模力高地", "算力券"]
QUESTIONS = ["模力高地什么时候投用", "算力券有什么用", "超级工厂有多少台机器人", "产业基金规模"]


def _results(folder):
    bm25 = BM25Index.load(folder, len(TEXTS))
    return [bm25.search(q, 4) for q in QUESTIONS]


def _firsts(folder):
    return [hits[0][0] for hits in _results(folder)]


def test_an_index_built_in_another_process_finds_what_one_built_here_finds(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    build_and_save(TEXTS, WORDS, here)
    job = BackgroundBuild(TEXTS, WORDS, there)
    job.wait()
    # Scores may differ in the last digits: this process's tokenizer also knows words earlier
    # tests taught it, the fresh one only WORDS.
    assert _firsts(there) == _firsts(here) == [1, 2, 3, 0]
    assert sorted(p.name for p in there.iterdir()) == ["bm25"]  # the hand-over file is gone


def test_a_failed_background_build_is_done_here_instead(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the other process exits with an error
    job = BackgroundBuild(TEXTS, WORDS, tmp_path)
    job.wait()
    assert _firsts(tmp_path) == [1, 2, 3, 0]


def test_a_cancelled_background_build_leaves_nothing(tmp_path):
    job = BackgroundBuild(TEXTS, WORDS, tmp_path)
    job.cancel()
    assert job._process.returncode is not None
    assert not (tmp_path / "bm25-input.json").exists()


def test_bm25_refuses_a_bad_k():
    with pytest.raises(ValueError, match="k must be positive"):
        BM25Index.build(TEXTS).search("算力券", 0)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended; only its entry waits
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_bm25_helper_ends_when_its_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import time

    # A helper reading an input nobody writes would wait forever: only its parent's death can end it.
    fifo = tmp_path / "input.json"
    os.mkfifo(fifo)
    starter = ("import os, subprocess, sys, time\n"
               "p = subprocess.Popen([sys.executable, '-m', 'rag.index.stores.bm25', sys.argv[1], sys.argv[2], str(os.getpid())])\n"
               "print(p.pid, flush=True)\n"
               "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter, str(fifo), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    helper = int(parent.stdout.readline())
    try:
        time.sleep(1.0)
        assert _running(helper)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 60  # PR_SET_PDEATHSIG ends it at once; the fallback polls every 0.5 s
        while _running(helper) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(helper)
    finally:
        parent.kill()
        if _running(helper):
            os.kill(helper, signal.SIGKILL)
