"""rag/lifetime.py: a child process that ends with the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys


def _run_tied(parent: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.lifetime", str(parent), *args], capture_output=True, text=True,
                          timeout=120)


def test_a_tied_module_runs_as_its_own_command_and_keeps_its_exit_code():
    done = _run_tied(os.getpid(), "rag.cli", "--help")
    assert done.returncode == 0 and "usage: rag" in done.stdout
    assert _run_tied(os.getpid(), "rag.cli", "no-such-command").returncode == 2


def test_a_module_whose_parent_is_already_gone_does_not_start():
    done = _run_tied(os.getpid() + 999_999, "rag.cli", "--help")  # not our pid, so not the child's parent
    assert done.returncode == 1 and "usage: rag" not in done.stdout
    assert _run_tied(os.getpid()).returncode == 2  # no module named: a usage line, not a traceback
