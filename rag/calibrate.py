"""Fit the answerers' abstention models and thresholds on a held-apart set.

Small logistic regressions (numpy, no extra dependency):
1. optionally, sentence weights: which candidate sentences hold a gold answer;
2. confidence: question-level evidence (best sentence score, word coverage, words the corpus never
   uses, answer-type cue) → probability that the documents answer the question;
3. threshold: the confidence cut with the best abstention F1 while false abstentions stay ≤ 5%,
   for the sentence picker one cut for English questions and one for the rest;
4. the same for the trained reader: its answerability, span score and margin over the next window,
   plus the words the corpus never uses → probability, and its own threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rag.answer import EVIDENCE, FEATURES, Answerer, searched_profile
from rag.config import CALIBRATION_FILE
from rag.index import Index
from rag.reader.reader import write_abstention
from rag.reading import READER_FEATURES, reading_windows
from rag.retrieve import Retriever
from rag.text import squash

MAX_FALSE_ABSTENTION = 0.05


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, balanced: bool = True, steps: int = 50) -> np.ndarray:
    """Return weights (last one the bias) of an L2-regularized logistic regression fitted by Newton steps."""
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x.shape[1])
    sample = np.ones(len(y))
    if balanced and 0 < y.sum() < len(y):
        sample = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (sample * (p - y)) + penalty * w
        hess = (x * (sample * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def calibration_items(path: Path) -> list[dict]:
    """Return the questions of a gold-format JSONL file (eval/calibration.jsonl)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def calibrate(index: Index, path: Path, out: Path = CALIBRATION_FILE, fit_sentences: bool = False) -> dict:
    """Fit the abstention model (and optionally the sentence weights) on `path`; write and return them."""
    items = calibration_items(path)
    answerer = Answerer(index)
    extractive = answerer.extractive
    retriever = Retriever(index, answerer.retrieval)

    def candidates(item):
        profile = searched_profile(item["question"], retriever)
        hits = retriever.run(item["question"])
        ranked = extractive.candidates(profile, retriever.query_vector(item["question"]), hits) if hits else []
        return profile, ranked

    weights = dict(extractive.weights)
    if fit_sentences:
        rows, labels = [], []
        for item in items:
            answers = [squash(a) for a in item.get("answers") or []]
            if not answers:
                continue
            _, ranked = candidates(item)
            hit = np.array([any(a in squash(c.text) for a in answers) for c in ranked], dtype=float)
            if hit.any():
                rows.append(np.array([[c.features[f] for f in FEATURES] for c in ranked]))
                labels.append(hit)
        w = fit_logistic(np.vstack(rows), np.concatenate(labels))
        weights = dict(zip(FEATURES, (float(v) for v in w[:-1])))
        extractive.weights = weights

    features, answerable, english = [], [], []
    for item in items:
        profile, ranked = candidates(item)
        evidence = extractive.evidence(profile, ranked)
        features.append([evidence[name] for name in EVIDENCE])
        answerable.append(1.0 if item.get("answers") else 0.0)
        english.append(profile.english)
    x, y = np.array(features), np.array(answerable)
    w, pooled = fit_abstention(x, y)
    # The per-language cuts need the out-of-fold confidences again: a few ms, offline.
    threshold, threshold_english = cuts_by_language(out_of_fold_confidence(x, y), y, np.array(english, dtype=bool),
                                                    pooled)
    result = {
        "weights": weights,
        "abstain_weights": dict(zip(EVIDENCE, (float(v) for v in w[:-1]))),
        "bias": float(w[-1]),
        "threshold": threshold,
        "threshold_english": threshold_english,
        "fitted_on": str(path),
        "questions": len(items),
        "unanswerable": int((y == 0).sum()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if answerer.reader.available:
        # The reader's model belongs to its adapter: it is saved in the adapter's folder.
        reader = calibrate_reader(answerer, items, retriever)
        write_abstention(answerer.reader.folder, {**reader, "fitted_on": str(path), "questions": len(items)})
        result["reader"] = reader
    return result


def calibrate_reader(answerer: Answerer, items: list[dict], retriever: Retriever) -> dict:
    """Return the reader's abstention model and thresholds, fitted on `items` as `calibrate` fits the extractive one
    (an adapter that reads English questions gets an English cut as the sentence picker does)."""
    x, y, english = reader_evidence(answerer, items, retriever)
    w, threshold = fit_abstention(x, y)
    threshold_english = None
    if english.any():
        threshold, threshold_english = cuts_by_language(out_of_fold_confidence(x, y), y, english, threshold)
    return {
        "weights": dict(zip(READER_FEATURES, (float(v) for v in w[:-1]))),
        "bias": float(w[-1]),
        "threshold": threshold,
        "threshold_english": threshold_english,
    }


def reader_evidence(answerer: Answerer, items: list[dict], retriever: Retriever) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the reader's abstention features (READER_FEATURES order) and answerable labels of the `items`
    the reader answers, and which of them are English.

    English questions are left out unless the adapter reads them: else the answer path sends them to
    the sentence picker.
    """
    features, answerable, english = [], [], []
    for item in items:
        question = item["question"]
        profile = searched_profile(question, retriever)
        if profile.english and not answerer.reader.reads_english:
            continue  # answered by the sentence picker (see Answerer._offline)
        hits = retriever.run(question)
        reading = None
        if hits:
            ranked = answerer.extractive.candidates(profile, retriever.query_vector(question), hits)
            windows = reading_windows(answerer.index, ranked, answerer.settings.answer.read_sentences)
            reading = answerer.reading.read(question, windows, answerer.extractive.unseen(profile))
        nothing = {"answerable": -10.0, "span": 0.0, "margin": 0.0, "prior": -2.0, "unseen": 1.0}
        values = reading.features if reading else nothing
        features.append([values[name] for name in READER_FEATURES])
        answerable.append(1.0 if item.get("answers") else 0.0)
        english.append(profile.english)
    x, y = np.array(features).reshape(-1, len(READER_FEATURES)), np.array(answerable)
    return x, y, np.array(english, dtype=bool)


def fit_abstention(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Return an abstention model's weights (bias last) and its cut, fitted on evidence rows and answerable labels."""
    # The cut is chosen on out-of-fold confidences: in-sample ones are optimistic, and a cut placed
    # by them abstains on more answerable questions than promised once the questions are new.
    return fit_logistic(x, y, l2=1.0), choose_threshold(out_of_fold_confidence(x, y), y)


# A language gets a cut of its own only with enough questions to place one: the false-abstention
# bound must rest on two or more answerable questions (with 20, as the calibration set has in
# English, a cut placed at 5 % rests on one, and on eval/english_dev.jsonl it declined 3 of 40).
MIN_ANSWERABLE_FOR_OWN_CUT = round(2 / MAX_FALSE_ABSTENTION)
MIN_UNANSWERABLE_FOR_OWN_CUT = 10


def cuts_by_language(confidence: np.ndarray, y: np.ndarray, english: np.ndarray, pooled: float) -> tuple[float, float]:
    """Return the sentence picker's cuts for questions not in English and in English.

    One model scores both, but an English question's evidence (translated words, its own features)
    puts its confidences on another scale, so one pooled cut trades one language's false abstentions
    for the other's. A language with enough questions of both labels gets the cut `choose_threshold`
    picks on its own questions; one with too few, `pooled` (`choose_threshold` on all of them).
    """

    def cut(rows: np.ndarray) -> float:
        labels = y[rows]
        if labels.sum() < MIN_ANSWERABLE_FOR_OWN_CUT or (labels == 0).sum() < MIN_UNANSWERABLE_FOR_OWN_CUT:
            return pooled
        return choose_threshold(confidence[rows], labels)

    return cut(~english), cut(english)


def out_of_fold_confidence(x: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Return each question's confidence from a model fitted without it (folds stratified by label)."""
    fold = np.zeros(len(y), dtype=int)
    for label in (0.0, 1.0):
        rows = np.flatnonzero(y == label)
        fold[rows] = np.arange(len(rows)) % folds
    out = np.zeros(len(y))
    for k in range(folds):
        held = fold == k
        if held.all() or not held.any():
            continue
        w = fit_logistic(x[~held], y[~held], l2=1.0)
        out[held] = 1 / (1 + np.exp(-(x[held] @ w[:-1] + w[-1])))
    return out


def choose_threshold(confidence: np.ndarray, answerable: np.ndarray) -> float:
    """Return the cut with the best abstention F1 whose false-abstention rate stays within bounds.

    The cut sits halfway between the confidences it separates, not on one of them.
    """
    best_t, best_f1 = 0.0, -1.0
    n_answerable = max(1, int(answerable.sum()))
    values = np.unique(np.concatenate([[0.0], confidence]))
    cuts = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-9]])
    for t in cuts:
        abstain = confidence < t
        false_abstain = (abstain & (answerable == 1)).sum() / n_answerable
        if false_abstain > MAX_FALSE_ABSTENTION:
            continue
        tp = (abstain & (answerable == 0)).sum()
        precision = tp / max(1, abstain.sum())
        recall = tp / max(1, (answerable == 0).sum())
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        if f1 > best_f1:
            best_t, best_f1 = float(t), f1
    return best_t
