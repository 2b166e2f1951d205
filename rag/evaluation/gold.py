"""Gold questions: the JSONL format `rag eval` scores against, parsed and checked line by line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOLD_TYPES = ("number", "date", "entity", "fact", "multi", "unanswerable")
_BASE_KEYS = ("id", "question", "answers", "doc", "evidence", "type")
_MULTI_KEYS = ("doc2", "evidence2")


class GoldError(ValueError):
    """A gold file line is malformed; the message names the file and line."""



@dataclass(frozen=True)
class Evidence:
    """One passage a question needs: the document's file name and a verbatim span of it."""

    doc: str
    text: str


@dataclass(frozen=True)
class GoldItem:
    """One gold question; `evidence` is empty for unanswerable ones, two long for multi ones."""

    id: str
    question: str
    answers: tuple[str, ...]
    type: str
    evidence: tuple[Evidence, ...] = ()

    @property
    def answerable(self) -> bool:
        """True unless the documents do not answer the question."""
        return self.type != "unanswerable"


def load_gold(path: Path) -> tuple[GoldItem, ...]:
    """Return the questions of a gold JSONL file; raise GoldError naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gold file {path} does not exist")
    items: list[GoldItem] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GoldError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        item = parse_gold(raw, where)
        if item.id in seen:
            raise GoldError(f"{where} ({item.id}): id {item.id!r} already used on line {seen[item.id]}")
        seen[item.id] = lineno
        items.append(item)
    if not items:
        raise GoldError(f"{path.name}: no questions")
    return tuple(items)


def parse_gold(raw: Any, where: str = "gold item") -> GoldItem:
    """Return the GoldItem of one decoded gold line; raise GoldError saying what is wrong."""
    if not isinstance(raw, dict):
        raise GoldError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    label = f"{where} ({raw['id']})" if isinstance(raw.get("id"), str) else where
    kind = raw.get("type")
    if kind not in GOLD_TYPES:
        raise GoldError(f"{label}: type {kind!r} is not one of {', '.join(GOLD_TYPES)}")
    expected = set(_BASE_KEYS) | (set(_MULTI_KEYS) if kind == "multi" else set())
    missing = [k for k in (*_BASE_KEYS, *_MULTI_KEYS) if k in expected and k not in raw]
    if missing:
        raise GoldError(f"{label}: missing key {', '.join(map(repr, missing))}")
    unknown = sorted(set(raw) - expected)
    if unknown:
        raise GoldError(f"{label}: unexpected key {', '.join(map(repr, unknown))} for type {kind!r}")
    if not isinstance(raw["id"], str) or not raw["id"].strip():
        raise GoldError(f"{label}: id must be a non-empty string")
    if not isinstance(raw["question"], str) or not raw["question"].strip():
        raise GoldError(f"{label}: question must be a non-empty string")
    answers = raw["answers"]
    if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
        raise GoldError(f"{label}: answers must be a list of non-empty strings")
    if kind == "unanswerable":
        if answers or raw["doc"] is not None or raw["evidence"] is not None:
            raise GoldError(f"{label}: an unanswerable question has answers [], doc null and evidence null")
        return GoldItem(raw["id"], raw["question"], (), kind)
    if not answers:
        raise GoldError(f"{label}: an answerable question needs at least one answer")
    pairs = [("doc", "evidence")] + ([("doc2", "evidence2")] if kind == "multi" else [])
    evidence = []
    for doc_key, ev_key in pairs:
        for key in (doc_key, ev_key):
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise GoldError(f"{label}: {key} must be a non-empty string")
        evidence.append(Evidence(raw[doc_key], raw[ev_key]))
    return GoldItem(raw["id"], raw["question"], tuple(answers), kind, tuple(evidence))
