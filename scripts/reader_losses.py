"""Where the reader's answers are lost on the held-out articles of a SQuAD-format file.

For every held-out question (Chinese, answerable), the default path is followed — hybrid retrieval,
the sentence scorer's candidates, windows around the best of them, the reader's pick — and each
question lands in one of four places: the quoted sentence holds the answer; the chosen window held
it but the reader's span is elsewhere; another window held it; no window held it. It also prints
how often some window holds the answer when reading around the top 1–10 candidates (the ceiling
that more windows would buy) and what the reader's pick reaches with 3, 5 and 8 windows and a few
weights of the sentence scorer's prior. `--split train` asks the reader's training articles instead:
where the window count and the prior's weight are chosen, so the held-out ones stay a test.

    python scripts/reader_losses.py ../shared/benchmarks/cmrc2018_trial.json [--split train] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from rag.answer import Answerer, profile_question
from rag.embed import DEFAULT_MODEL, make_embedder
from rag.evaluation import squad_index
from rag.reading import PRIOR_WEIGHT, quote_span, rank_readings, reading_windows
from rag.retrieve import Retriever
from rag.evaluation.squad import load_squad
from rag.text import squash

CEILING_COUNTS = (1, 2, 3, 4, 5, 6, 8, 10)
PICK_COUNTS = (3, 5, 8)
PRIOR_WEIGHTS = (0.0, 1.0, PRIOR_WEIGHT)


def losses(answerer: Answerer, questions) -> None:
    index = answerer.index
    default = answerer.settings.answer.read_sentences
    places: Counter = Counter()
    ceiling: Counter = Counter()
    picked: Counter = Counter()
    n = 0
    for q in questions:
        profile = profile_question(q.question)
        if profile.english:
            continue
        n += 1
        golds = [squash(a) for a in q.answers]
        retriever = Retriever(index, answerer.retrieval)
        hits = retriever.run(q.question)
        ranked = answerer.extractive.candidates(profile, retriever.query_vector(q.question), hits)
        for count in CEILING_COUNTS:
            windows = reading_windows(index, ranked, count)
            ceiling[count] += any(any(g in squash(w.text) for g in golds) for w in windows)
        for count in sorted({*PICK_COUNTS, default}):
            windows = reading_windows(index, ranked, count)
            spans = answerer.reader.read(q.question, [w.text for w in windows]) if windows else []
            read = [(w, s) for w, s in zip(windows, spans) if s is not None]
            for weight in sorted(set(PRIOR_WEIGHTS)):  # one reading, ranked with each weight of the prior
                found = rank_readings(read, weight)
                place = _place(found, golds)
                picked[(count, weight)] += place.startswith("quoted")
                if count == default and weight == PRIOR_WEIGHT:
                    places[place] += 1
    print(f"{n} Chinese questions, {default} windows and prior weight {PRIOR_WEIGHT} (the defaults):")
    for place, count in places.most_common():
        print(f"  {place}: {count} ({count / n:.3f})")
    print("some window holds the answer, reading around the top N candidates:")
    print("  " + ", ".join(f"{c}: {ceiling[c] / n:.3f}" for c in CEILING_COUNTS))
    print("the reader's quoted sentence holds it (abstention aside), by windows read and prior weight:")
    for count in sorted({c for c, _ in picked}):
        print(f"  {count} windows: " + ", ".join(f"weight {w}: {picked[(c, w)] / n:.3f}"
                                                  for c, w in sorted(picked) if c == count))


def _place(found, golds: list[str]) -> str:
    """Where the answer is, given the read windows in ranked order."""
    if not found:
        return "no window holds the answer"
    window, span = found[0]
    a, b = quote_span(window, (window.start + span.start, window.start + span.end))
    if any(g in squash(window.hit.chunk.text[a:b]) for g in golds):
        return "quoted sentence holds the answer"
    if any(g in squash(window.text) for g in golds):
        return "chosen window holds it, the span is elsewhere"
    if any(any(g in squash(w.text) for g in golds) for w, _ in found):
        return "another window holds it"
    return "no window holds the answer"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--split", choices=("heldout", "train"), default="heldout")
    parser.add_argument("--limit", type=int, default=None, help="the first N questions of the split")
    args = parser.parse_args(argv)
    squad = load_squad(args.file)
    questions = [q for q in squad.questions if q.split == args.split][: args.limit]
    with squad_index(squad, make_embedder(DEFAULT_MODEL, long_lived=True)) as index:  # as rag eval --squad
        losses(Answerer(index), questions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
