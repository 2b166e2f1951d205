"""The `rag` command's own behaviour: what it prints to a terminal."""

from __future__ import annotations

from rag.cli import main

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
