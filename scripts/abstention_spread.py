"""How much the reader's abstention depends on which calibration questions it was fitted on.

`rag calibrate` fits the reader's abstention model and cut on eval/calibration.jsonl (250 questions,
90 of them answerable Chinese ones, and the cut may decline at most 5 % of them). This script gathers
the reader's abstention features once, for the calibration questions and for the Chinese questions
of a SQuAD-format file (all answerable), refits the model and cut on bootstrap resamples of the
calibration questions (stratified by label), and prints the share of the file's questions each fit
would decline: the spread that a change of adapter or calibration set can move end-to-end figures
by without the reader reading any better.

    python scripts/abstention_spread.py INDEX_DIR ../shared/benchmarks/DRCD_dev.json [--split heldout] [--resamples 200]
        [--calibration FILE]  # another gold-format question set, e.g. an earlier eval/calibration.jsonl

INDEX_DIR is an index of seeds/ (rag index --docs seeds --index DIR); RAG_READER picks the adapter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from rag.answer import Answerer
from rag.calibrate import calibration_items, fit_abstention, reader_evidence
from rag.embed import DEFAULT_MODEL, make_embedder
from rag.evaluation import squad_index
from rag.index import load_index
from rag.retrieve import Retriever
from rag.evaluation.squad import load_squad

CALIBRATION = Path(__file__).resolve().parent.parent / "eval" / "calibration.jsonl"


def declined(w: np.ndarray, cut: float, x: np.ndarray) -> float:
    """Return the share of rows whose calibrated confidence falls below the cut."""
    return float(np.mean(1 / (1 + np.exp(-(x @ w[:-1] + w[-1]))) < cut))


def evidence_of(answerer: Answerer, items: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x, y, _ = reader_evidence(answerer, items, Retriever(answerer.index, answerer.retrieval))
    return x, y


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index", type=Path, help="an index of seeds/")
    parser.add_argument("file", type=Path, help="a SQuAD-format file")
    parser.add_argument("--split", choices=("heldout", "train", "all"), default="heldout")
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=Path, default=CALIBRATION, help="the questions to fit on")
    args = parser.parse_args(argv)

    embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
    seeds = Answerer(load_index(args.index, embedder))
    if not seeds.reader.available:
        print("no reader adapter: nothing to calibrate", file=sys.stderr)
        return 1
    x_cal, y_cal = evidence_of(seeds, calibration_items(args.calibration))
    squad = load_squad(args.file)
    items = [{"question": q.question, "answers": list(q.answers)}
             for q in squad.questions if args.split == "all" or q.split == args.split]
    with squad_index(squad, embedder) as index:
        x_file, _ = evidence_of(Answerer(index), items)

    w, cut = fit_abstention(x_cal, y_cal)
    print(f"calibration: {len(y_cal)} Chinese questions, {int(y_cal.sum())} answerable; "
          f"{args.file.name} ({args.split}): {len(x_file)} Chinese questions")
    print(f"fitted on all of them: cut {cut:.3f}, declines {declined(w, cut, x_file):.3f} of the file's questions")
    rng = np.random.default_rng(args.seed)
    rows = [np.flatnonzero(y_cal == label) for label in (0.0, 1.0)]
    cuts, shares = [], []
    for _ in range(args.resamples):
        pick = np.concatenate([rng.choice(r, size=len(r), replace=True) for r in rows])
        w_b, cut_b = fit_abstention(x_cal[pick], y_cal[pick])
        cuts.append(cut_b)
        shares.append(declined(w_b, cut_b, x_file))
    q = [5, 25, 50, 75, 95]
    print(f"{args.resamples} bootstrap refits, percentiles {q}:")
    print("  cut:      " + "  ".join(f"{v:.3f}" for v in np.percentile(cuts, q)))
    print("  declined: " + "  ".join(f"{v:.3f}" for v in np.percentile(shares, q)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
