"""Span EM/F1 and answerability of a reader adapter on the held-out articles, per file (the model card's table).

    python scripts/validate_reader.py [ADAPTER_DIR]      # default: the shipped rag/data/reader
"""

from __future__ import annotations

import sys
from pathlib import Path

from rag.paths import SHIPPED_READER
from rag.reader.model import ReaderModel
from rag.reader.train import validate

BENCHMARKS = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks"

if __name__ == "__main__":
    model = ReaderModel.load(Path(sys.argv[1]) if len(sys.argv) > 1 else SHIPPED_READER)
    for name in ("cmrc2018_trial.json", "DRCD_dev.json"):
        print(name, validate(model, [BENCHMARKS / name]), flush=True)
