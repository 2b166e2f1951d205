"""Where the reader's answers are lost on the held-out articles of a SQuAD-format file.

For every held-out question (Chinese, answerable), the default path is followed — hybrid retrieval,
the sentence scorer's candidates, windows around the best of them, the reader's pick — and each
question lands in one of four places: the quoted sentence holds the answer; the chosen window held
it but the reader's span is elsewhere; another window held it; no window held it. It also prints
how often some window holds the answer when reading around the top 1–10 candidates (the ceiling
that more windows would buy) and what the reader's pick reaches with 3, 5 and 8 windows.

    python scripts/reader_losses.py ../shared/benchmarks/cmrc2018_trial.json
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

from rag.answer import Answerer, profile_question
from rag.embed import DEFAULT_MODEL, make_embedder
from rag.evaluate import DEFAULT_CACHE
from rag.index import build_index, load_index
from rag.reading import PRIOR_WEIGHT, quote_span, reading_windows
from rag.retrieve import Retriever
from rag.squad import load_squad, write_corpus
from rag.text import squash

CEILING_COUNTS = (1, 2, 3, 4, 5, 6, 8, 10)
PICK_COUNTS = (3, 5, 8)


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
            found = sorted(((w, s) for w, s in zip(windows, spans) if s is not None),
                           key=lambda ws: -(ws[1].answerable + PRIOR_WEIGHT * ws[0].prior))
            place = "no window holds the answer"
            if found:
                window, span = found[0]
                a, b = quote_span(window, (window.start + span.start, window.start + span.end))
                if any(g in squash(window.hit.chunk.text[a:b]) for g in golds):
                    place = "quoted sentence holds the answer"
                elif any(g in squash(window.text) for g in golds):
                    place = "chosen window holds it, the span is elsewhere"
                elif any(any(g in squash(w.text) for g in golds) for w, _ in found):
                    place = "another window holds it"
            picked[count] += place.startswith("quoted")
            if count == default:
                places[place] += 1
    print(f"{n} held-out Chinese questions, {default} windows (the default):")
    for place, count in places.most_common():
        print(f"  {place}: {count} ({count / n:.3f})")
    print("some window holds the answer, reading around the top N candidates:")
    print("  " + ", ".join(f"{c}: {ceiling[c] / n:.3f}" for c in CEILING_COUNTS))
    print("the reader's quoted sentence holds it (abstention aside):")
    print("  " + ", ".join(f"{c} windows: {picked[c] / n:.3f}" for c in sorted(picked)))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    squad = load_squad(Path(argv[0]))
    questions = [q for q in squad.questions if q.split == "heldout"]
    embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
    DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wenyu-losses-") as tmp:
        docs = write_corpus(squad, Path(tmp) / "docs")
        index_dir = Path(tmp) / "index"
        index_dir.mkdir()
        (index_dir / "cache").symlink_to(DEFAULT_CACHE.resolve(), target_is_directory=True)  # as rag eval --squad
        build_index(docs, index_dir, embedder)
        losses(Answerer(load_index(index_dir, embedder)), questions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
