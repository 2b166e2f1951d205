"""Short-answer scores the CMRC 2018 way: mixed segmentation, punctuation removed, EM and LCS-based F1."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_ASCII_RUN = re.compile(r"[A-Za-z0-9]+(?:[.\-'][A-Za-z0-9]+)*")
_PUNCT_EXTRA = set("－：_*^/\\~`+=，。：？！“”；’《》……·、「」（）－～『』")


def segment(text: str) -> list[str]:
    """Return the text as tokens: each CJK character alone, runs of Latin letters or digits whole, lower-cased."""
    tokens, at = [], 0
    text = text.lower()
    while at < len(text):
        match = _ASCII_RUN.match(text, at)
        if match:
            tokens.append(match.group())
            at = match.end()
            continue
        ch = text[at]
        if not ch.isspace() and not _is_punct(ch):
            tokens.append(ch)
        at += 1
    return tokens


def _is_punct(ch: str) -> bool:
    return ch in _PUNCT_EXTRA or unicodedata.category(ch).startswith("P")


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the prediction equals a gold answer once punctuation and spacing are removed."""
    pred = "".join(segment(prediction))
    return 1.0 if any(pred == "".join(segment(a)) for a in answers) else 0.0


def f1_score(prediction: str, answers: Sequence[str]) -> float:
    """The best F1 over gold answers, from their longest common run of tokens (CMRC 2018's official metric)."""
    pred = segment(prediction)
    best = 0.0
    for answer in answers:
        gold = segment(answer)
        common = _longest_common_run(pred, gold)
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _longest_common_run(a: list[str], b: list[str]) -> int:
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best
