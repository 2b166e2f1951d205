"""Span EM/F1 and answerability of a reader adapter on the held-out articles, per file (the model card's table).

    python scripts/validate_reader.py [ADAPTER_DIR] [--nearby]    # default: the shipped rag/data/reader

--nearby adds each question's nearby negatives (the windows its answer competes with at run time),
so `question_pick` says how often the reader ranks the answer's window first among them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from rag.paths import SHIPPED_READER
from rag.reader.model import ReaderModel
from rag.reader.train import validate

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"

if __name__ == "__main__":
    nearby = "--nearby" in sys.argv[1:]
    folders = [a for a in sys.argv[1:] if a != "--nearby"]
    model = ReaderModel.load(Path(folders[0]) if folders else SHIPPED_READER)
    for name in ("cmrc2018_trial.json", "DRCD_dev.json"):
        print(name, validate(model, [BENCHMARKS / name], nearby=nearby), flush=True)
