"""Running gold questions through retrieval and the answerers of an index, and scoring each answer."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from rag import text as textmod
from rag.evaluation.evidence import Target, covers, locate
from rag.evaluation.gold import Evidence, GoldError, GoldItem, load_gold
from rag.evaluation.metrics import (char_f1, contains_answer, cutoffs, first_relevant, ideal_gains, language_of, mean,
                                    ndcg, reciprocal_rank, strip_markers, summarize, unique)
from rag.evaluation.report import write_report
from rag.evaluation.results import EvalReport, QuestionResult, SummaryRow
from rag.reader.score import exact_match, f1_score
from rag.types import AnswerMode, Chunk, Citation, Mode

DEFAULT_K = 10
DEFAULT_CACHE = Path.home() / ".cache" / "wenyu" / "squad-cache"

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.index import Index

Progress = Callable[[str, int, int], None]  # (stage, done, total), as for build_index


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
                mean([bool(first_relevant(coverage[i.id][:c])) for i in items if i.answerable]) or 0.0
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
            for c in cutoffs(self.k):
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



def parse_choices(values: Iterable[str | Enum], kind: type[Enum], what: str) -> list:
    """Return the distinct members of enum `kind` named by `values`; raise ValueError listing the choices."""
    out = []
    for value in values:
        try:
            out.append(kind(value))
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            raise ValueError(f"unknown {what} {value!r}: choose from {choices}") from None
    return unique(out)


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

    `split` "heldout" (or "train") asks only the questions of those articles (`rag.evaluation.squad.split_of`),
    while every paragraph stays in the index as a distractor. `questions` asks another file's questions
    with the same ids (XQuAD English over its Chinese paragraphs; see `rag.evaluation.squad.load_squad`).
    """
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.evaluation.squad import SQUAD_TYPE, load_squad

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
    # Not named `questions`: that is the file the questions come from, recorded in the settings below.
    asked = [q for q in squad.questions if split == "all" or q.split == split]
    if split != "all":
        notes.append(f"{split} articles only: {len(asked)} of {len(squad.questions)} questions "
                     f"(all {len(squad.paragraphs)} paragraphs indexed)")
    if not asked:
        raise ValueError(f"{squad_path} has no usable questions in split {split!r}")
    items = [GoldItem(q.id, q.question, q.answers, SQUAD_TYPE, (Evidence(q.file, q.evidence),))
             for q in asked]
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


@contextlib.contextmanager
def squad_index(squad, embedder, cache_dir: Path | None = None, progress: Progress | None = None) -> Iterator:
    """Yield a loaded index of every paragraph of a loaded SQuAD file, built in a temporary folder.

    Its embedding cache lives in `cache_dir` (default DEFAULT_CACHE), so a rerun embeds only
    paragraphs not seen before.
    """
    from rag.index import build_index, load_index
    from rag.evaluation.squad import write_corpus

    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wenyu-squad-") as tmp:
        docs = write_corpus(squad, Path(tmp) / "docs")
        index_dir = Path(tmp) / "index"
        index_dir.mkdir()
        (index_dir / "cache").symlink_to(cache_dir.resolve(), target_is_directory=True)
        build_index(docs, index_dir, embedder, progress=progress)
        yield load_index(index_dir, embedder)
