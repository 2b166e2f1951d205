"""Span EM/F1 and answerability of a reader adapter on the held-out articles, per file (the model card's table).

    python scripts/validate_reader.py [ADAPTER_DIR] [--nearby]    # default: the shipped rag/data/reader

--nearby adds each question's nearby negatives (the windows its answer competes with at run time),
so `question_pick` says how often the reader ranks the answer's window first among them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rag.paths import SHIPPED_READER
from rag.reader.model import ReaderModel
from rag.reader.train import validate

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", type=Path, nargs="?", default=SHIPPED_READER)
    parser.add_argument("--nearby", action="store_true", help="add each question's nearby negatives")
    args = parser.parse_args()
    model = ReaderModel.load(args.adapter)
    for name in ("cmrc2018_trial.json", "DRCD_dev.json"):
        print(name, validate(model, [BENCHMARKS / name], nearby=args.nearby), flush=True)
