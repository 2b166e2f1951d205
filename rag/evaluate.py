"""Score the system against gold questions: retrieval, answer, citation, abstention and latency metrics.

Relevance: a retrieved chunk is relevant to a piece of gold evidence when its squashed text
contains the squashed evidence, or when its span in the cleaned document overlaps the evidence's
span (found by matching in squashed space and mapping back to cleaned offsets). Chunks overlap by
one sentence, so evidence at a chunk border is still found in the chunk that holds most of it.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime as dt
import json
import math
import re
import statistics
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag import text as textmod
from rag.reader.score import exact_match, f1_score
from rag.types import AnswerMode, Chunk, Citation, Document, Mode, _jsonable

GOLD_TYPES = ("number", "date", "entity", "fact", "multi", "unanswerable")
_BASE_KEYS = ("id", "question", "answers", "doc", "evidence", "type")
_MULTI_KEYS = ("doc2", "evidence2")
_MARKER = re.compile(r"\[\d+\]")
_CUTOFFS = (1, 5, 10)
DEFAULT_K = 10
DEFAULT_CACHE = Path.home() / ".cache" / "wenyu" / "squad-cache"

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index

Progress = Callable[[str, int, int], None]  # (stage, done, total), as for build_index


class GoldError(ValueError):
    """A gold file line is malformed; the message names the file and line."""


# --- gold questions ---------------------------------------------------------------------------


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


# --- metrics (pure functions) -----------------------------------------------------------------


def strip_markers(answer: str) -> str:
    """Return an answer's text without its citation markers ([1], [2] …)."""
    return _MARKER.sub("", answer)


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """True when a gold answer occurs in `text`, both squashed (NFKC, Simplified, lower, no spaces)."""
    squashed = textmod.squash(strip_markers(text))
    return any(a and a in squashed for a in (textmod.squash(x) for x in answers))


def char_f1(prediction: str, answers: Iterable[str]) -> float:
    """Return the best character-level F1 of `prediction` against any gold answer (squashed chars)."""
    pred = Counter(textmod.squash(strip_markers(prediction)))
    best = 0.0
    for answer in answers:
        gold = Counter(textmod.squash(answer))
        common = sum((pred & gold).values())
        if common:
            precision, recall = common / sum(pred.values()), common / sum(gold.values())
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def first_relevant(coverage: Sequence[Collection[int]]) -> int | None:
    """Return the 1-based rank of the first chunk that covers any evidence, or None."""
    return next((rank for rank, covered in enumerate(coverage, 1) if covered), None)


def reciprocal_rank(coverage: Sequence[Collection[int]], k: int) -> float:
    """Return 1/rank of the first relevant chunk within the top `k`, else 0."""
    rank = first_relevant(coverage[:k])
    return 1.0 / rank if rank else 0.0


def new_gains(coverage: Sequence[Collection[int]]) -> list[int]:
    """Return per rank how many evidence pieces the chunk covers that no chunk above it did."""
    seen: set[int] = set()
    gains = []
    for covered in coverage:
        fresh = set(covered) - seen
        gains.append(len(fresh))
        seen |= fresh
    return gains


def ideal_gains(relevant: Iterable[Collection[int]]) -> list[int]:
    """Return the gains of the best ordering of the given chunk coverages (greedy; exact for ≤2 pieces)."""
    pool = [set(c) for c in relevant if c]
    uncovered = set().union(*pool) if pool else set()
    gains = []
    while uncovered:
        best = max(pool, key=lambda c: len(c & uncovered))
        gains.append(len(best & uncovered))
        uncovered -= best
    return gains


def ndcg(coverage: Sequence[Collection[int]], ideal: Sequence[int], k: int) -> float:
    """Return nDCG@k where a chunk's gain is the number of evidence pieces it newly covers.

    A second chunk holding the same evidence adds nothing (chunks overlap by a sentence, so one
    evidence often sits in two of them); the ideal is the best ordering of the index's chunks.
    """
    def dcg(gains: Sequence[int]) -> float:
        return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains[:k], 1))

    best = dcg(ideal)
    return dcg(new_gains(coverage)) / best if best > 0 else 0.0


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Return precision, recall and F1 (0 where a denominator is 0)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def p95(values: Sequence[float]) -> float:
    """Return the 95th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


# --- locating evidence ------------------------------------------------------------------------


def squash_map(text: str) -> tuple[str, list[int]]:
    """Return (squash(text), offsets) with offsets[i] the index in `text` of squashed character i.

    Normalizing character by character keeps the map even where NFKC changes the length (①, ㈱).
    """
    chars: list[str] = []
    owners: list[int] = []
    for i, ch in enumerate(text):
        for out in unicodedata.normalize("NFKC", ch).lower():
            chars.append(out)
            owners.append(i)
    simplified = textmod.to_simplified("".join(chars))  # length-preserving by contract
    squashed, offsets = [], []
    for ch, owner in zip(simplified, owners):
        if not ch.isspace():
            squashed.append(ch)
            offsets.append(owner)
    return "".join(squashed), offsets


def find_spans(text: str, evidence: str) -> list[tuple[int, int]]:
    """Return every (start, end) span of `text` whose squashed form is the squashed `evidence`."""
    needle = textmod.squash(evidence)
    if not needle:
        return []
    haystack, offsets = squash_map(text)
    spans = []
    at = haystack.find(needle)
    while at >= 0:
        spans.append((offsets[at], offsets[at + len(needle) - 1] + 1))
        at = haystack.find(needle, at + 1)
    return spans


def locate(doc: Document, evidence: str) -> list[tuple[int, int]]:
    """Return the spans of `evidence` in the cleaned text of `doc` (searching the original if cleaning changed it)."""
    spans = find_spans(doc.text, evidence)
    if spans or not doc.offsets:
        return spans
    out = []
    for start, end in find_spans(doc.original, evidence):
        # offsets map cleaned → original and only grow, so bisect maps an original span back.
        s, e = bisect.bisect_left(doc.offsets, start), bisect.bisect_left(doc.offsets, end)
        if e > s:
            out.append((s, e))
    return out


@dataclass(frozen=True)
class Target:
    """One piece of gold evidence resolved against an index: its document id, squashed text and spans."""

    doc_id: str | None
    squashed: str
    spans: tuple[tuple[int, int], ...]


def covers(chunk: Chunk, target: Target, squashed_chunk: str | None = None) -> bool:
    """True when `chunk` holds `target`: its text contains the evidence or its span overlaps it."""
    squashed_chunk = textmod.squash(chunk.text) if squashed_chunk is None else squashed_chunk
    if target.squashed and target.squashed in squashed_chunk:
        return True
    return chunk.doc_id == target.doc_id and any(s < chunk.end and chunk.start < e for s, e in target.spans)


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionResult:
    """One question under one configuration: what was retrieved and answered, and how it scored."""

    id: str
    type: str
    question: str
    language: str
    mode: Mode
    answer_mode: AnswerMode
    answerable: bool
    retrieved: tuple[str, ...]  # chunk ids, best first (rank = position + 1)
    relevant_ranks: tuple[int, ...]  # ranks of retrieved chunks that cover some evidence
    answer: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    latency: float  # seconds for the answer call
    scores: dict[str, float | bool | None]  # per-metric hit/miss or value
    notes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class SummaryRow:
    """The aggregate metrics of one retrieval mode × answer mode, overall and by question type and language."""

    mode: Mode
    answer_mode: AnswerMode
    metrics: dict[str, float | None]
    counts: dict[str, int]
    by_type: dict[str, dict[str, float | None]]
    by_language: dict[str, dict[str, float | None]]

    @property
    def label(self) -> str:
        """Return "mode/answer_mode"."""
        return f"{self.mode.value}/{self.answer_mode.value}"


@dataclass(frozen=True)
class EvalReport:
    """Everything one evaluation run produced; `report_dir` and `plots` are set once written."""

    source: str
    settings: dict[str, Any]
    rows: tuple[SummaryRow, ...]
    questions: tuple[QuestionResult, ...]
    notes: tuple[str, ...] = ()
    report_dir: Path | None = None
    plots: tuple[Path, ...] = ()
    curves: dict[str, list[float]] = field(default_factory=dict)  # mode → Recall@1..k

    def row(self, mode: Mode | str = Mode.HYBRID, answer_mode: AnswerMode | str = AnswerMode.READER) -> SummaryRow:
        """Return the summary row of one configuration; raise KeyError when it was not run."""
        mode, answer_mode = Mode(mode), AnswerMode(answer_mode)
        for row in self.rows:
            if row.mode is mode and row.answer_mode is answer_mode:
                return row
        raise KeyError(f"{mode.value}/{answer_mode.value} was not evaluated")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: settings, notes, summary rows, curves and one row per question."""
        data = {
            "source": self.source,
            "settings": self.settings,
            "notes": list(self.notes),
            "summary": [dataclasses.asdict(r) for r in self.rows],
            "recall_curves": self.curves,
            "questions": [dataclasses.asdict(q) for q in self.questions],
        }
        return _jsonable(data)


# --- running ----------------------------------------------------------------------------------


class Evaluator:
    """Runs gold questions through retrieval and the answerer of one loaded index."""

    def __init__(
        self, index: Index, k: int = DEFAULT_K, answer_k: int | None = None, settings: Settings | None = None
    ) -> None:
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        if answer_k is not None and answer_k <= 0:
            raise ValueError(f"answer_k must be positive, got {answer_k}")
        self.index = index
        self.k = k
        self.answer_k = answer_k
        self.settings = settings
        self._squashed: dict[str, str] = {}
        self._by_file = {d.file: d for d in index.documents.values()}
        from rag.reader.reader import Reader

        self.reader = Reader()  # shared by every configuration: the weights load once

    def run(
        self,
        items: Sequence[GoldItem],
        modes: Sequence[Mode | str] = (Mode.HYBRID,),
        answer_modes: Sequence[AnswerMode | str] = (AnswerMode.READER,),
        progress: Progress | None = None,
        source: str = "",
        notes: Sequence[str] = (),
    ) -> EvalReport:
        """Return the report of every configuration on `items`; llm rows are skipped (with a note) when no LLM is configured."""
        from rag.answer import Answerer
        from rag.retrieve import QuestionError, RetrievalConfig, Retriever

        modes = parse_choices(modes, Mode, "retrieval mode")
        answer_modes = parse_choices(answer_modes, AnswerMode, "answer mode")
        if not items:
            raise ValueError("no gold questions to evaluate")
        if not modes or not answer_modes:
            raise ValueError("choose at least one retrieval mode and one answer mode")
        notes = list(notes)
        if AnswerMode.LLM in answer_modes and not Answerer(self.index, settings=self.settings).llm_available:
            answer_modes.remove(AnswerMode.LLM)
            notes.append("llm rows skipped: no LLM is configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL)")
            if not answer_modes:
                raise ValueError("only llm answers were asked for and no LLM is configured")
        targets = {item.id: self._targets(item) for item in items}
        unlocated = [f"{i.id}:{e.doc}" for i in items for e, t in zip(i.evidence, targets[i.id]) if not t.spans]
        if unlocated:
            notes.append(f"evidence not found in its document for {len(unlocated)} item(s) "
                         f"(relevance falls back to text containment): {', '.join(unlocated[:10])}")
        ideals = {item.id: ideal_gains(self._coverage(self.index.chunks, targets[item.id])) for item in items}
        answer_config = RetrievalConfig() if self.answer_k is None else RetrievalConfig(k=self.answer_k)

        results: list[QuestionResult] = []
        rows: list[SummaryRow] = []
        curves: dict[str, list[float]] = {}
        # Retrieval for the metrics reuses the query vector the answerer computed, so each question
        # is embedded once and the timed answer call still pays for its own embedding.
        index = dataclasses.replace(self.index, embedder=_QueryMemo(self.index.embedder))
        for mode in modes:
            retriever = Retriever(index, RetrievalConfig(mode=mode, k=self.k))
            answerers = {a: Answerer(index, dataclasses.replace(answer_config, mode=mode), settings=self.settings,
                                     reader=self.reader)
                         for a in answer_modes}
            asked: dict[tuple[str, AnswerMode], _Asked] = {}
            retrieved: dict[str, list[Chunk]] = {}
            for n, item in enumerate(items, 1):
                for answer_mode, answerer in answerers.items():
                    asked[item.id, answer_mode] = _ask(answerer, item.question, answer_mode)
                try:
                    retrieved[item.id] = [h.chunk for h in retriever.run(item.question, k=self.k)]
                except QuestionError:
                    retrieved[item.id] = []  # the answer call recorded the error
                index.embedder.forget()
                if progress:
                    progress(mode.value, n, len(items))
            coverage = {i.id: self._coverage(retrieved[i.id], targets[i.id]) for i in items}
            curves[mode.value] = [
                _mean([bool(first_relevant(coverage[i.id][:c])) for i in items if i.answerable]) or 0.0
                for c in range(1, self.k + 1)
            ]
            for answer_mode in answer_modes:
                row_results = [
                    self._score(item, mode, answer_mode, asked[item.id, answer_mode], retrieved[item.id],
                                coverage[item.id], targets[item.id], ideals[item.id])
                    for item in items
                ]
                results.extend(row_results)
                rows.append(summarize(row_results, mode, answer_mode, self.k))
        settings = {
            "k": self.k,
            "answer_k": answer_config.k,
            "modes": [m.value for m in modes],
            "answer_modes": [a.value for a in answer_modes],
            "questions": len(items),
            "index": str(self.index.path),
            "embedder": self.index.manifest.get("embedder", {}).get("id"),
            "chunks": len(self.index.chunks),
            "documents": len(self.index.documents),
            "created": dt.datetime.now().isoformat(timespec="seconds"),
        }
        return EvalReport(source, settings, tuple(rows), tuple(results), tuple(notes), curves=curves)

    def _targets(self, item: GoldItem) -> list[Target]:
        out = []
        for evidence in item.evidence:
            doc = self._by_file.get(evidence.doc)
            if doc is None:
                raise GoldError(
                    f"{item.id}: document {evidence.doc!r} is not in the index at {self.index.path}; "
                    f"index the folder that holds it (rag index --docs DIR)"
                )
            out.append(Target(doc.id, textmod.squash(evidence.text), tuple(locate(doc, evidence.text))))
        return out

    def _coverage(self, chunks: Sequence[Chunk], targets: Sequence[Target]) -> list[frozenset[int]]:
        return [frozenset(j for j, t in enumerate(targets) if covers(c, t, self._squash(c))) for c in chunks]

    def _squash(self, chunk: Chunk) -> str:
        if chunk.id not in self._squashed:
            self._squashed[chunk.id] = textmod.squash(chunk.text)
        return self._squashed[chunk.id]

    def _score(self, item, mode, answer_mode, asked: _Asked, chunks, coverage, targets, ideal) -> QuestionResult:
        scores: dict[str, float | bool | None] = {}
        if item.answerable:
            for c in _cutoffs(self.k):
                scores[f"recall@{c}"] = bool(first_relevant(coverage[:c]))
                if len(item.evidence) > 1:
                    scores[f"both@{c}"] = len(set().union(*coverage[:c])) == len(item.evidence)
            scores[f"rr@{self.k}"] = reciprocal_rank(coverage, self.k)
            scores[f"ndcg@{self.k}"] = ndcg(coverage, ideal, self.k)
            # Document level, as the SQuAD baselines count it: any chunk of an evidence document.
            docs = {t.doc_id for t in targets}
            in_doc = [{0} if c.doc_id in docs else set() for c in chunks]
            scores["doc_recall@5"] = bool(first_relevant(in_doc[:5]))
            scores[f"doc_rr@{self.k}"] = reciprocal_rank(in_doc, self.k)
        answer_text, abstained, citations = asked.text, asked.abstained, asked.citations
        if item.answerable:
            text = strip_markers(answer_text) if not abstained else ""
            cited = list(dict.fromkeys(c.chunk_id for c in citations)) if not abstained else []
            supported = [self._supports(cid, targets, item.answers) for cid in cited]
            sentences = len(list(textmod.sentence_spans(text)))
            scores.update({
                "contains": contains_answer(text, item.answers),
                "contains_short": contains_answer(text, item.answers) and sentences <= 2,
                "f1": char_f1(text, item.answers) if text else 0.0,
                # The short answer scored the CMRC 2018 way; an answer without one is scored whole.
                "em": exact_match(asked.short or text, item.answers) if text else 0.0,
                "short_f1": f1_score(asked.short or text, item.answers) if text else 0.0,
                "length": len(textmod.squash(text)) if not abstained else None,
                "sentences": sentences if not abstained else None,
                "citation_precision": sum(supported) / len(supported) if supported else None,
                "citation_hit": any(supported),
            })
        scores["abstained"] = abstained
        return QuestionResult(
            id=item.id, type=item.type, question=item.question, language=language_of(item.question),
            mode=mode, answer_mode=answer_mode, answerable=item.answerable,
            retrieved=tuple(c.id for c in chunks),
            relevant_ranks=tuple(r for r, cov in enumerate(coverage, 1) if cov),
            answer=answer_text, abstained=abstained, confidence=asked.confidence, citations=citations,
            latency=asked.latency, scores=scores, notes=asked.notes, error=asked.error,
        )

    def _supports(self, chunk_id: str, targets: Sequence[Target], answers: Sequence[str]) -> bool:
        chunk = self.index.chunks[self.index.chunk_position(chunk_id)]
        squashed = self._squash(chunk)
        return any(covers(chunk, t, squashed) for t in targets) or any(
            textmod.squash(a) in squashed for a in answers if textmod.squash(a)
        )


@dataclass(frozen=True)
class _Asked:
    """What the answerer returned for one question, and how long it took."""

    text: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    notes: tuple[str, ...]
    latency: float
    error: str | None = None
    short: str = ""


def _ask(answerer, question: str, answer_mode: AnswerMode) -> _Asked:
    from rag.retrieve import QuestionError

    began = time.perf_counter()
    try:
        answer = answerer.run(question, answer_mode=answer_mode)
    except QuestionError as exc:  # an unaskable question is recorded, not fatal
        return _Asked("", True, 0.0, (), (), time.perf_counter() - began, str(exc))
    return _Asked(answer.text, answer.abstained, float(answer.confidence), tuple(answer.citations),
                  tuple(answer.notes), time.perf_counter() - began, short=answer.short)


class _QueryMemo:
    """Wraps an embedder so the same query text is embedded once until `forget()`."""

    def __init__(self, embedder) -> None:
        self._inner = embedder
        self.model_id, self.dim = embedder.model_id, embedder.dim
        self._memo: dict[str, object] = {}

    def embed_queries(self, texts):
        key = tuple(texts)
        if key not in self._memo:
            self._memo[key] = self._inner.embed_queries(texts)
        return self._memo[key]

    def embed_passages(self, texts):
        return self._inner.embed_passages(texts)

    def forget(self) -> None:
        self._memo.clear()


def summarize(results: Sequence[QuestionResult], mode: Mode, answer_mode: AnswerMode, k: int) -> SummaryRow:
    """Return the summary row of one configuration's question results."""
    by_type = {t: _aggregate([r for r in results if r.type == t], k) for t in _unique([r.type for r in results])}
    by_language = {g: _aggregate([r for r in results if r.language == g], k)
                   for g in _unique([r.language for r in results])}
    answerable = [r for r in results if r.answerable]
    counts = {
        "questions": len(results),
        "answerable": len(answerable),
        "unanswerable": len(results) - len(answerable),
        "multi": sum(1 for r in answerable if any(key.startswith("both@") for key in r.scores)),
        "abstained": sum(1 for r in results if r.abstained),
        "errors": sum(1 for r in results if r.error),
        "llm_fallbacks": sum(1 for r in results if any("extractive answer shown" in n for n in r.notes)),
    }
    return SummaryRow(mode, answer_mode, _aggregate(results, k), counts, by_type, by_language)


def _aggregate(results: Sequence[QuestionResult], k: int) -> dict[str, float | None]:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    out: dict[str, float | None] = {}
    for c in _cutoffs(k):
        out[f"recall@{c}"] = _mean([r.scores[f"recall@{c}"] for r in answerable])
    out[f"mrr@{k}"] = _mean([r.scores[f"rr@{k}"] for r in answerable])
    out[f"ndcg@{k}"] = _mean([r.scores[f"ndcg@{k}"] for r in answerable])
    out["doc_recall@5"] = _mean([r.scores["doc_recall@5"] for r in answerable])
    out[f"doc_mrr@{k}"] = _mean([r.scores[f"doc_rr@{k}"] for r in answerable])
    for c in _cutoffs(k):
        out[f"multi_both@{c}"] = _mean([r.scores[f"both@{c}"] for r in answerable if f"both@{c}" in r.scores])
    answered = [r for r in answerable if not r.abstained]
    out["containment"] = _mean([r.scores["contains"] for r in answerable])
    out["containment_short"] = _mean([r.scores["contains_short"] for r in answerable])
    out["f1"] = _mean([r.scores["f1"] for r in answerable])
    out["em"] = _mean([r.scores["em"] for r in answerable])
    out["short_f1"] = _mean([r.scores["short_f1"] for r in answerable])
    out["length"] = _mean([r.scores["length"] for r in answered])
    out["citation_precision"] = _mean([r.scores["citation_precision"] for r in answered
                                       if r.scores["citation_precision"] is not None])
    out["citation_recall"] = _mean([r.scores["citation_hit"] for r in answerable])
    tp = sum(1 for r in unanswerable if r.abstained)
    fp = sum(1 for r in answerable if r.abstained)
    fn = len(unanswerable) - tp
    if unanswerable:
        out["abstention_precision"], out["abstention_recall"], out["abstention_f1"] = prf(tp, fp, fn)
    else:
        out["abstention_precision"] = out["abstention_recall"] = out["abstention_f1"] = None
    out["false_abstention"] = fp / len(answerable) if answerable else None
    latencies = [r.latency for r in results if r.error is None]
    out["latency_mean"] = _mean(latencies)
    out["latency_p95"] = p95(latencies) if latencies else None
    return out


def parse_choices(values: Iterable[str | Enum], kind: type[Enum], what: str) -> list:
    """Return the distinct members of enum `kind` named by `values`; raise ValueError listing the choices."""
    out = []
    for value in values:
        try:
            out.append(kind(value))
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise ValueError(f"unknown {what} {value!r}: choose from {choices}") from None
    return _unique(out)


def _mean(values: Sequence[float | bool]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _cutoffs(k: int) -> list[int]:
    return sorted({c for c in _CUTOFFS if c <= k} | {k})


def _unique(values: list) -> list:
    return list(dict.fromkeys(values))


def language_of(question: str) -> str:
    """Return "english", "traditional" or "simplified" for a question."""
    if textmod.is_english(question):
        return "english"
    return "traditional" if textmod.to_simplified(question) != question else "simplified"


# --- entry points -----------------------------------------------------------------------------


def run_eval(
    index: Index,
    gold: Path | Sequence[GoldItem],
    modes: Sequence[Mode | str] = (Mode.HYBRID,),
    answer_modes: Sequence[AnswerMode | str] = (AnswerMode.READER,),
    k: int = DEFAULT_K,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    answer_k: int | None = None,
    settings: Settings | None = None,
) -> EvalReport:
    """Return the evaluation of a loaded index on a gold file (or items); with `out_dir`, also write the report there."""
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    source = str(gold) if isinstance(gold, (str, Path)) else "gold items"
    items = load_gold(Path(gold)) if isinstance(gold, (str, Path)) else tuple(gold)
    notes = []
    if limit is not None and limit < len(items):
        notes.append(f"limited to the first {limit} of {len(items)} questions")
        items = items[:limit]
    report = Evaluator(index, k, answer_k, settings).run(items, modes, answer_modes, progress, source, notes)
    report = dataclasses.replace(report, settings={**report.settings, "limit": limit})
    return write_report(report, out_dir) if out_dir is not None else report


def run_squad_eval(
    squad_path: Path,
    modes: Sequence[Mode | str] = (Mode.HYBRID,),
    answer_modes: Sequence[AnswerMode | str] = (AnswerMode.READER,),
    k: int = DEFAULT_K,
    out_dir: Path | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    answer_k: int | None = None,
    cache_dir: Path | None = None,
    embedder=None,
    settings: Settings | None = None,
    split: str = "all",
    questions: Path | None = None,
) -> EvalReport:
    """Return the evaluation on a SQuAD-format file, indexing its paragraphs (the first `limit`) in a temporary folder.

    `split` "heldout" (or "train") asks only the questions of those articles (`rag.squad.split_of`),
    while every paragraph stays in the index as a distractor. `questions` asks another file's questions
    with the same ids (XQuAD English over its Chinese paragraphs; see `rag.squad.load_squad`).
    """
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.squad import SQUAD_TYPE, load_squad

    squad = load_squad(Path(squad_path), limit, questions)
    notes = []
    if limit is not None and limit < squad.total_paragraphs:
        notes.append(f"limited to the first {len(squad.paragraphs)} of {squad.total_paragraphs} paragraphs "
                     f"(a smaller corpus has fewer distractors, so retrieval is easier than on the full file)")
    if squad.empty_questions:
        notes.append(f"skipped {squad.empty_questions} empty question(s)")
    if squad.unlocated:
        notes.append(f"skipped {squad.unlocated} question(s) whose answer text is not in the paragraph")
    if not squad.questions:
        raise ValueError(f"{squad_path} has no usable questions")
    if split not in ("all", "train", "heldout"):
        raise ValueError(f"split must be 'all', 'train' or 'heldout', got {split!r}")
    questions = [q for q in squad.questions if split == "all" or q.split == split]
    if split != "all":
        notes.append(f"{split} articles only: {len(questions)} of {len(squad.questions)} questions "
                     f"(all {len(squad.paragraphs)} paragraphs indexed)")
    if not questions:
        raise ValueError(f"{squad_path} has no usable questions in split {split!r}")
    items = [GoldItem(q.id, q.question, q.answers, SQUAD_TYPE, (Evidence(q.file, q.evidence),))
             for q in questions]
    embedder = embedder or make_embedder(DEFAULT_MODEL, long_lived=True)
    with squad_index(squad, embedder, cache_dir, progress) as index:
        report = Evaluator(index, k, answer_k, settings).run(items, modes, answer_modes, progress,
                                                             str(squad_path), notes)
    report = dataclasses.replace(report, settings={
        **report.settings, "limit": limit, "paragraphs": len(squad.paragraphs), "index": "temporary", "split": split,
        "skipped_empty": squad.empty_questions, "skipped_unlocated": squad.unlocated,
        "questions_from": str(questions) if questions is not None else None,
    })
    return write_report(report, out_dir) if out_dir is not None else report


# --- output -----------------------------------------------------------------------------------

_TABLE = (
    ("MRR", "mrr@{k}"), ("nDCG", "ndcg@{k}"),
    ("Contain", "containment"), ("EM", "em"), ("sF1", "short_f1"), ("F1", "f1"), ("Len", "length"), ("CitP", "citation_precision"),
    ("CitR", "citation_recall"), ("AbsP", "abstention_precision"), ("AbsR", "abstention_recall"),
    ("AbsF1", "abstention_f1"), ("FalseAbs", "false_abstention"), ("Lat", "latency_mean"), ("p95", "latency_p95"),
)


@contextlib.contextmanager
def squad_index(squad, embedder, cache_dir: Path | None = None, progress: Progress | None = None) -> Iterator:
    """Yield a loaded index of every paragraph of a loaded SQuAD file, built in a temporary folder.

    Its embedding cache lives in `cache_dir` (default DEFAULT_CACHE), so a rerun embeds only
    paragraphs not seen before.
    """
    from rag.index import build_index, load_index
    from rag.squad import write_corpus

    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wenyu-squad-") as tmp:
        docs = write_corpus(squad, Path(tmp) / "docs")
        index_dir = Path(tmp) / "index"
        index_dir.mkdir()
        (index_dir / "cache").symlink_to(cache_dir.resolve(), target_is_directory=True)
        build_index(docs, index_dir, embedder, progress=progress)
        yield load_index(index_dir, embedder)


def _columns(k: int) -> list[tuple[str, str]]:
    recall = [(f"R@{c}", f"recall@{c}") for c in _cutoffs(k)]
    return recall + [(f"{head}@{k}" if "{k}" in key else head, key.format(k=k)) for head, key in _TABLE]


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "length":
        return f"{value:.0f}"
    if key.startswith("latency"):
        return f"{value:.2f}s"
    return f"{value:.3f}"


def format_table(report: EvalReport) -> str:
    """Return the summary rows as an aligned plain-text table."""
    cols = _columns(report.settings["k"])
    header = ["config"] + [h for h, _ in cols]
    lines = [[row.label] + [_cell(key, row.metrics.get(key)) for _, key in cols] for row in report.rows]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(report: EvalReport, plots_dir: str | None = ".") -> str:
    """Return the report as Markdown; plots are linked relative to `plots_dir` (None: not linked)."""
    k = report.settings["k"]
    s = report.settings
    out = [f"# Evaluation report — {Path(report.source).name}", ""]
    out.append(f"Run {s['created']} on {s['questions']} questions · index: {s['documents']} documents, "
               f"{s['chunks']} chunks ({s['embedder']}) · retrieval metrics at k={k} · "
               f"answers from the top {s['answer_k']} passages"
               + (f" · limit {s['limit']}" if s.get("limit") else "") + ".")
    out.append("")
    for note in report.notes:
        out.append(f"- {note}")
    if report.notes:
        out.append("")
    cols = _columns(k)
    out.append("## Summary")
    out.append("")
    out.append(_md_table(["config"] + [h for h, _ in cols],
                         [[r.label] + [_cell(key, r.metrics.get(key)) for _, key in cols] for r in report.rows]))
    out.append("")
    extra = [("doc R@5", "doc_recall@5"), (f"doc MRR@{k}", f"doc_mrr@{k}")]
    extra += [(f"multi both@{c}", f"multi_both@{c}") for c in _cutoffs(k)] + [("contain ≤2 sentences", "containment_short")]
    out.append(_md_table(["config"] + [h for h, _ in extra] + ["answerable", "unanswerable", "abstained", "errors"],
                         [[r.label] + [_cell(key, r.metrics.get(key)) for _, key in extra]
                          + [str(r.counts[c]) for c in ("answerable", "unanswerable", "abstained", "errors")]
                          for r in report.rows]))
    out.append("")
    out.append(_METRIC_NOTES.format(k=k))
    group_cols = [("n", None), ("R@5", "recall@5"), (f"MRR@{k}", f"mrr@{k}"), ("Contain", "containment"),
                  ("CitP", "citation_precision"), ("abstained", None)]
    for title, attr in (("By question type", "by_type"), ("By question language", "by_language")):
        out += ["", f"## {title}", ""]
        for row in report.rows:
            groups = getattr(row, attr)
            rows = []
            for name, metrics in groups.items():
                members = [q for q in report.questions if q.mode is row.mode and q.answer_mode is row.answer_mode
                           and (q.type if attr == "by_type" else q.language) == name]
                cells = [name, str(len(members))]
                cells += [_cell(key, metrics.get(key)) for _, key in group_cols[1:-1]]
                cells.append(f"{sum(q.abstained for q in members)}/{len(members)}")
                rows.append(cells)
            out += [f"**{row.label}**", "", _md_table([attr[3:]] + [h for h, _ in group_cols], rows), ""]
    if plots_dir is not None and report.plots:
        out += ["## Plots", ""]
        out += [f"![{p.stem}]({plots_dir.rstrip('/')}/{p.name})" for p in report.plots]
        out.append("")
    out += _failures(report)
    return "\n".join(out).rstrip() + "\n"


_METRIC_NOTES = """\
R@n: share of answerable questions with a relevant chunk in the top n (multi: either piece; *multi both*:
all pieces; *doc*: any chunk of the evidence's document, as the SQuAD baselines count). MRR@{k}: mean 1/rank of the first relevant chunk. nDCG@{k}: gain = evidence pieces a chunk
newly covers, ideal = best ordering of the index's chunks. Contain: a gold answer occurs in the answer
(squashed: NFKC, Simplified, lower case, no whitespace; abstentions count as misses). F1: best
character-level F1 against a gold answer. Len: mean squashed characters of given answers. CitP: per
answered question, the share of cited passages (chunks of the citations) that hold the evidence or a gold
answer, averaged. CitR: share of answerable questions with at least one such citation. AbsP/AbsR/AbsF1:
abstention as a detector of unanswerable questions. FalseAbs: share of answerable questions abstained
on. Lat/p95: seconds per answer (mean, 95th percentile), on a shared CPU."""


def _failures(report: EvalReport, limit: int = 40) -> list[str]:
    out = []
    for row in report.rows:
        members = [q for q in report.questions if q.mode is row.mode and q.answer_mode is row.answer_mode]
        misses = []
        for q in members:
            if q.answerable and (q.abstained or not q.scores.get("contains")):
                rank = q.relevant_ranks[0] if q.relevant_ranks else "–"
                what = "abstained" if q.abstained else _short(strip_markers(q.answer))
                misses.append([q.id, q.type, _short(q.question, 30), str(rank), what])
            elif not q.answerable and not q.abstained:
                misses.append([q.id, q.type, _short(q.question, 30), "–", "answered: " + _short(strip_markers(q.answer))])
        if not misses:
            continue
        out += [f"## Misses — {row.label} ({len(misses)})", ""]
        out.append(_md_table(["id", "type", "question", "first relevant rank", "answer"], misses[:limit]))
        if len(misses) > limit:
            out.append(f"\n… and {len(misses) - limit} more (see results.json)")
        out.append("")
    return out


def _short(text: str, n: int = 50) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def write_report(report: EvalReport, out_dir: Path) -> EvalReport:
    """Write report.md, results.json and PNG plots into a new `out_dir/<timestamp>/`; return the report with their paths."""
    out_dir = Path(out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out_dir / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = out_dir / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    plots = make_plots(report, folder)
    report = dataclasses.replace(report, report_dir=folder, plots=tuple(plots))
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    with open(folder / "results.json", "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, ensure_ascii=False, indent=1)
    return report


def write_latest(report: EvalReport, path: Path) -> Path:
    """Write the Markdown summary to `path` (the committed eval/reports/latest.md) and return it."""
    path = Path(path)
    text = render_markdown(report, plots_dir=None)  # run folders are git-ignored: no links into them
    if report.report_dir is not None:
        text += f"\nPlots and per-question results of this run: `{report.report_dir.name}/` (not committed).\n"
    path.write_text(text, encoding="utf-8")
    return path


def make_plots(report: EvalReport, folder: Path) -> list[Path]:
    """Draw Recall@k curves per mode and per-type answer containment; return the PNG paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plots need matplotlib: pip install matplotlib") from exc
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, curve in report.curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=mode)
    ax.set(xlabel="k (passages retrieved)", ylabel="Recall@k", ylim=(0, 1.02),
           title=f"Recall@k — {Path(report.source).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(folder / "recall_at_k.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    types = [t for t in _unique([q.type for q in report.questions if q.answerable])]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(types) * max(1, len(report.rows)) / 2), 4))
    width = 0.8 / max(1, len(report.rows))
    for i, row in enumerate(report.rows):
        values = [row.by_type.get(t, {}).get("containment") or 0.0 for t in types]
        ax.bar([x + i * width for x in range(len(types))], values, width, label=row.label)
    ax.set_xticks([x + width * (len(report.rows) - 1) / 2 for x in range(len(types))], types)
    ax.set(ylabel="answer containment", ylim=(0, 1.02), title="Answer containment by question type")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "containment_by_type.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
