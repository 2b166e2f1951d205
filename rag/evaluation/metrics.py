"""The metrics: pure functions of answers and retrieved-chunk coverage, and their aggregation per configuration."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

from rag import text as textmod
from rag.evaluation.results import QuestionResult, SummaryRow
from rag.types import AnswerMode, Mode

_MARKER = re.compile(r"\[\d+\]")
_CUTOFFS = (1, 5, 10)


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


def summarize(results: Sequence[QuestionResult], mode: Mode, answer_mode: AnswerMode, k: int) -> SummaryRow:
    """Return the summary row of one configuration's question results."""
    by_type = {t: _aggregate([r for r in results if r.type == t], k) for t in unique([r.type for r in results])}
    by_language = {g: _aggregate([r for r in results if r.language == g], k)
                   for g in unique([r.language for r in results])}
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
    for c in cutoffs(k):
        out[f"recall@{c}"] = mean([r.scores[f"recall@{c}"] for r in answerable])
    out[f"mrr@{k}"] = mean([r.scores[f"rr@{k}"] for r in answerable])
    out[f"ndcg@{k}"] = mean([r.scores[f"ndcg@{k}"] for r in answerable])
    out["doc_recall@5"] = mean([r.scores["doc_recall@5"] for r in answerable])
    out[f"doc_mrr@{k}"] = mean([r.scores[f"doc_rr@{k}"] for r in answerable])
    for c in cutoffs(k):
        out[f"multi_both@{c}"] = mean([r.scores[f"both@{c}"] for r in answerable if f"both@{c}" in r.scores])
    answered = [r for r in answerable if not r.abstained]
    out["containment"] = mean([r.scores["contains"] for r in answerable])
    out["containment_short"] = mean([r.scores["contains_short"] for r in answerable])
    out["f1"] = mean([r.scores["f1"] for r in answerable])
    out["em"] = mean([r.scores["em"] for r in answerable])
    out["short_f1"] = mean([r.scores["short_f1"] for r in answerable])
    out["length"] = mean([r.scores["length"] for r in answered])
    out["citation_precision"] = mean([r.scores["citation_precision"] for r in answered
                                       if r.scores["citation_precision"] is not None])
    out["citation_recall"] = mean([r.scores["citation_hit"] for r in answerable])
    tp = sum(1 for r in unanswerable if r.abstained)
    fp = sum(1 for r in answerable if r.abstained)
    fn = len(unanswerable) - tp
    if unanswerable:
        out["abstention_precision"], out["abstention_recall"], out["abstention_f1"] = prf(tp, fp, fn)
    else:
        out["abstention_precision"] = out["abstention_recall"] = out["abstention_f1"] = None
    out["false_abstention"] = fp / len(answerable) if answerable else None
    latencies = [r.latency for r in results if r.error is None]
    out["latency_mean"] = mean(latencies)
    out["latency_p95"] = p95(latencies) if latencies else None
    return out


def mean(values: Sequence[float | bool]) -> float | None:
    """Return the mean of `values`, or None when there are none."""
    return float(statistics.fmean(values)) if values else None


def cutoffs(k: int) -> list[int]:
    """Return the ranks Recall@n is reported at: 1, 5 and 10 where ≤ k, and k."""
    return sorted({c for c in _CUTOFFS if c <= k} | {k})


def unique(values: list) -> list:
    """Return `values` without repeats, in first-seen order."""
    return list(dict.fromkeys(values))


def language_of(question: str) -> str:
    """Return "english", "traditional" or "simplified" for a question."""
    if textmod.is_english(question):
        return "english"
    return "traditional" if textmod.to_simplified(question) != question else "simplified"
