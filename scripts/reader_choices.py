"""The figures behind two choices of the reader's answer path, measured on eval/calibration.jsonl.

1. How many candidate sentences to read around, and the weight of the sentence scorer's prior
   (rag.reading.PRIOR_WEIGHT): answer-sentence containment of the Chinese answerable questions,
   and abstention F1 / false abstentions of a reader abstention model fitted out of fold.
2. Whether English questions go to the reader or the sentence picker: on the answerable English
   questions, how often each one's quoted sentence holds a gold answer.

    python scripts/reader_choices.py INDEX_DIR      # an index of seeds/ (rag index --docs seeds --index DIR)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from rag.answer import Answerer, profile_question
from rag.calibrate import calibration_items, choose_threshold, out_of_fold_confidence
from rag.index import load_index
from rag.reading import READER_FEATURES, quote_span, rank_readings, reading_features, reading_windows
from rag.retrieve import Retriever
from rag.text import squash

CALIBRATION = Path(__file__).resolve().parent.parent / "eval" / "calibration.jsonl"


def window_choices(answerer: Answerer, retriever: Retriever, items: list[dict]) -> None:
    index, reader = answerer.index, answerer.reader
    questions = []
    for item in items:
        profile = profile_question(item["question"])
        if profile.english:
            continue
        hits = retriever.run(item["question"])
        ranked = answerer.extractive.candidates(profile, retriever.query_vector(item["question"]), hits)
        questions.append((item, ranked, [squash(a) for a in item.get("answers") or []],
                          answerer.extractive.unseen(profile)))
    read: dict[tuple, object] = {}  # (question id, chunk, start, end) -> span: each window is read once
    for count in (2, 3, 4, 5, 6, 8):
        for prior_weight in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0):
            features, answerable, contains = [], [], []
            for item, ranked, golds, unseen in questions:
                windows = reading_windows(index, ranked, count)
                keys = [(item["id"], w.hit.chunk.id, w.start, w.end) for w in windows]
                todo = [(k, w) for k, w in zip(keys, windows) if k not in read]
                for (k, _), span in zip(todo, reader.read(item["question"], [w.text for _, w in todo])):
                    read[k] = span
                found = rank_readings([(w, read[k]) for k, w in zip(keys, windows) if read[k] is not None],
                                      prior_weight)
                window, span = found[0]
                quote = quote_span(window, (window.start + span.start, window.start + span.end))
                quoted = squash(window.hit.chunk.text[quote[0] : quote[1]])
                reading = reading_features(found, unseen)
                features.append([reading[name] for name in READER_FEATURES])
                answerable.append(1.0 if golds else 0.0)
                contains.append(any(g in quoted for g in golds))
            x, y, hit = np.array(features), np.array(answerable), np.array(contains)
            confidence = out_of_fold_confidence(x, y)
            abstain = confidence < choose_threshold(confidence, y)
            caught = (abstain & (y == 0)).sum()
            precision, recall = caught / max(1, abstain.sum()), caught / max(1, (y == 0).sum())
            print(f"windows {count}, prior weight {prior_weight}: containment {hit[y == 1].mean():.3f}, "
                  f"abstention F1 {2 * precision * recall / max(1e-9, precision + recall):.3f}, "
                  f"false abstention {(abstain & (y == 1)).sum() / (y == 1).sum():.3f}")
    print(f"({len(questions)} Chinese questions, {int(sum(1 for q in questions if q[2]))} answerable)")


def english_choice(answerer: Answerer, retriever: Retriever, items: list[dict]) -> None:
    n = reader_hits = picker_hits = 0
    for item in items:
        profile = profile_question(item["question"])
        if not profile.english or not item.get("answers"):
            continue
        golds = [squash(a) for a in item["answers"]]
        hits = retriever.run(item["question"])
        ranked = answerer.extractive.candidates(profile, retriever.query_vector(item["question"]), hits)
        windows = reading_windows(answerer.index, ranked, answerer.settings.answer.read_sentences)
        reading = answerer.reading.read(item["question"], windows, answerer.extractive.unseen(profile))
        quoted = squash(reading.hit.chunk.text[slice(*reading.quote)]) if reading else ""
        picked = squash("".join(c.text for c in answerer.extractive.select(profile, ranked))) if ranked else ""
        n += 1
        reader_hits += any(g in quoted for g in golds)
        picker_hits += any(g in picked for g in golds)
    print(f"{n} answerable English questions: the reader's sentence holds the answer {reader_hits / n:.3f}, "
          f"the sentence picker's {picker_hits / n:.3f}")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    index = load_index(Path(argv[0]), long_lived=True)
    answerer = Answerer(index)
    retriever = Retriever(index, answerer.retrieval)
    items = calibration_items(CALIBRATION)
    window_choices(answerer, retriever, items)
    english_choice(answerer, retriever, items)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
