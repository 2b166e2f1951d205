"""Validate the hand-made gold question set eval/gold.jsonl against the seed articles, and the
held-apart sets beside it (eval/calibration.jsonl, eval/english_dev.jsonl) as far as they share its rules.

Every answerable question must be grounded: its evidence is a verbatim span of the article
(after `squash`: NFKC, Traditional→Simplified, lower case, no whitespace), an answer occurs in
that evidence, and every answer occurs in the article.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest

from rag.text import squash, to_simplified

ROOT = Path(__file__).resolve().parent.parent
GOLD = ROOT / "eval" / "gold.jsonl"
SEEDS = ROOT / "seeds"

TYPES = {"number", "date", "entity", "fact", "multi", "unanswerable"}
BASE_KEYS = {"id", "question", "answers", "doc", "evidence", "type"}
MULTI_KEYS = BASE_KEYS | {"doc2", "evidence2"}
ID_RE = re.compile(r"^g\d{3}$")
EVIDENCE_MIN, EVIDENCE_MAX = 10, 60
MIN_QUESTIONS = 100


def _load() -> list[dict]:
    rows = []
    for lineno, line in enumerate(GOLD.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            pytest.fail(f"{GOLD.name} line {lineno}: invalid JSON ({exc})")
        if not isinstance(row, dict):
            pytest.fail(f"{GOLD.name} line {lineno}: not a JSON object")
        rows.append(row)
    return rows


ROWS = _load()


def _label(row: dict) -> str:
    return str(row.get("id", "<no id>"))


@lru_cache(maxsize=None)
def _article(name: str) -> str:
    return squash((SEEDS / name).read_text(encoding="utf-8"))


def _is_english(question: str) -> bool:
    chars = [c for c in question if not c.isspace()]
    ascii_letters = sum(1 for c in chars if c.isascii() and c.isalpha())
    return bool(chars) and ascii_letters / len(chars) > 0.5


def _is_traditional(question: str) -> bool:
    return to_simplified(question) != question


# --- per-question checks ---------------------------------------------------------------------


@pytest.mark.parametrize("row", ROWS, ids=_label)
def test_keys_and_shape(row: dict) -> None:
    qid = _label(row)
    assert isinstance(row.get("id"), str) and ID_RE.match(row["id"]), f"{qid}: id must look like gNNN"
    assert row.get("type") in TYPES, f"{qid}: type {row.get('type')!r} not in {sorted(TYPES)}"
    expected = MULTI_KEYS if row["type"] == "multi" else BASE_KEYS
    assert set(row) == expected, (
        f"{qid}: keys {sorted(row)} != allowed {sorted(expected)}"
    )
    assert isinstance(row["question"], str) and row["question"].strip(), f"{qid}: empty question"
    assert isinstance(row["answers"], list), f"{qid}: answers must be a list"
    assert all(isinstance(a, str) and a.strip() for a in row["answers"]), (
        f"{qid}: every answer must be a non-empty string"
    )


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("type") == "unanswerable"], ids=_label)
def test_unanswerable(row: dict) -> None:
    qid = _label(row)
    assert row["answers"] == [], f"{qid}: unanswerable question must have answers == []"
    assert row["doc"] is None, f"{qid}: unanswerable question must have doc == null"
    assert row["evidence"] is None, f"{qid}: unanswerable question must have evidence == null"


def _check_passage(qid: str, doc, evidence, which: str) -> str:
    assert isinstance(doc, str) and doc, f"{qid}: {which} doc missing"
    assert (SEEDS / doc).is_file(), f"{qid}: {which} doc {doc!r} not found in seeds/"
    assert isinstance(evidence, str) and evidence.strip(), f"{qid}: {which} evidence missing"
    ev = squash(evidence)
    assert EVIDENCE_MIN <= len(ev) <= EVIDENCE_MAX, (
        f"{qid}: {which} evidence is {len(ev)} chars, want {EVIDENCE_MIN}-{EVIDENCE_MAX}"
    )
    assert ev in _article(doc), f"{qid}: {which} evidence {evidence!r} is not a span of {doc}"
    return ev


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("type") != "unanswerable"], ids=_label)
def test_answerable_grounded(row: dict) -> None:
    qid = _label(row)
    answers = row["answers"]
    assert 1 <= len(answers) <= 3, f"{qid}: want 1-3 answers, got {len(answers)}"
    evidences = [_check_passage(qid, row["doc"], row["evidence"], "first")]
    docs = [row["doc"]]
    if row["type"] == "multi":
        evidences.append(_check_passage(qid, row["doc2"], row["evidence2"], "second"))
        docs.append(row["doc2"])
    squashed = [squash(a) for a in answers]
    assert any(a in ev for a in squashed for ev in evidences), (
        f"{qid}: no answer of {answers} occurs in the evidence"
    )
    for answer, sq in zip(answers, squashed):
        assert any(sq in _article(d) for d in docs), (
            f"{qid}: answer {answer!r} does not occur in {' / '.join(docs)}"
        )


# --- whole-set checks ------------------------------------------------------------------------


def test_ids_unique_and_ordered() -> None:
    ids = [_label(r) for r in ROWS]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate ids: {duplicates}"
    expected = [f"g{n:03d}" for n in range(1, len(ids) + 1)]
    wrong = [(got, want) for got, want in zip(ids, expected) if got != want]
    assert not wrong, f"ids out of order (got, expected): {wrong[:5]}"


def test_questions_unique() -> None:
    seen: dict[str, str] = {}
    for row in ROWS:
        key = squash(row["question"])
        assert key not in seen, f"{_label(row)}: same question as {seen[key]}"
        seen[key] = _label(row)


def test_set_size_and_coverage() -> None:
    assert len(ROWS) >= MIN_QUESTIONS, f"only {len(ROWS)} questions, want >= {MIN_QUESTIONS}"
    seeds = {p.name for p in SEEDS.glob("*.txt")}
    covered = {r.get("doc") for r in ROWS} | {r.get("doc2") for r in ROWS}
    missing = sorted(seeds - covered)
    assert not missing, f"no question about: {missing}"
    types = {r.get("type") for r in ROWS}
    assert types == TYPES, f"types used {sorted(types)}, want all of {sorted(TYPES)}"


def test_unanswerable_share() -> None:
    unanswerable = sum(1 for r in ROWS if r.get("type") == "unanswerable")
    assert unanswerable * 10 >= len(ROWS), (
        f"only {unanswerable}/{len(ROWS)} unanswerable questions, want >= 10%"
    )


def test_languages() -> None:
    english = [_label(r) for r in ROWS if _is_english(r["question"])]
    traditional = [_label(r) for r in ROWS if _is_traditional(r["question"])]
    assert english, "no English questions"
    assert traditional, "no Traditional-character questions"


# --- the held-apart sets: the same grounding, and nothing shared with the test set -------------

HELD_APART = (ROOT / "eval" / "calibration.jsonl", ROOT / "eval" / "english_dev.jsonl")


def _held_apart_rows() -> list:
    return [pytest.param(row, id=f"{path.stem}-{row['id']}") for path in HELD_APART
            for row in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip())]


@pytest.mark.parametrize("row", _held_apart_rows())
def test_held_apart_questions_parse_and_are_grounded(row: dict) -> None:
    from rag.evaluation import parse_gold

    parse_gold(row)
    if row["type"] == "unanswerable":
        return
    pairs = [(row["doc"], row["evidence"])] + ([(row["doc2"], row["evidence2"])] if row["type"] == "multi" else [])
    for doc, evidence in pairs:
        assert squash(evidence) in _article(doc), f"{row['id']}: evidence {evidence!r} is not a span of {doc}"
    assert any(squash(a) in squash(e) for a in row["answers"] for _, e in pairs), (
        f"{row['id']}: no answer occurs in the evidence")
    for answer in row["answers"]:
        assert any(squash(answer) in _article(doc) for doc, _ in pairs), f"{row['id']}: answer {answer!r} is in no doc"


def test_held_apart_sets_have_unique_ids_and_share_no_question_with_the_gold_set() -> None:
    gold = {squash(r["question"]) for r in ROWS}
    for path in HELD_APART:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        ids = [r["id"] for r in rows]
        assert len(set(ids)) == len(ids), f"{path.name}: duplicate ids"
        shared = [r["id"] for r in rows if squash(r["question"]) in gold]
        assert not shared, f"{path.name}: {shared} are gold questions"
