"""What an evaluation run produces: per-question results, summary rows, and the report holding both."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.types import AnswerMode, Citation, Mode, jsonable

@dataclass(frozen=True)
class QuestionResult:
    """One question under one configuration: what was retrieved and answered, and how it scored."""

    id: str
    type: str
    question: str
    language: str
    mode: Mode
    answer_mode: AnswerMode
    answerable: bool
    retrieved: tuple[str, ...]  # chunk ids, best first (rank = position + 1)
    relevant_ranks: tuple[int, ...]  # ranks of retrieved chunks that cover some evidence
    answer: str
    abstained: bool
    confidence: float
    citations: tuple[Citation, ...]
    latency: float  # seconds for the answer call
    scores: dict[str, float | bool | None]  # per-metric hit/miss or value
    notes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class SummaryRow:
    """The aggregate metrics of one retrieval mode × answer mode, overall and by question type and language."""

    mode: Mode
    answer_mode: AnswerMode
    metrics: dict[str, float | None]
    counts: dict[str, int]
    by_type: dict[str, dict[str, float | None]]
    by_language: dict[str, dict[str, float | None]]

    @property
    def label(self) -> str:
        """Return "mode/answer_mode"."""
        return f"{self.mode.value}/{self.answer_mode.value}"


@dataclass(frozen=True)
class EvalReport:
    """Everything one evaluation run produced; `report_dir` and `plots` are set once written."""

    source: str
    settings: dict[str, Any]
    rows: tuple[SummaryRow, ...]
    questions: tuple[QuestionResult, ...]
    notes: tuple[str, ...] = ()
    report_dir: Path | None = None
    plots: tuple[Path, ...] = ()
    curves: dict[str, list[float]] = field(default_factory=dict)  # mode → Recall@1..k

    def row(self, mode: Mode | str = Mode.HYBRID, answer_mode: AnswerMode | str = AnswerMode.READER) -> SummaryRow:
        """Return the summary row of one configuration; raise KeyError when it was not run."""
        mode, answer_mode = Mode(mode), AnswerMode(answer_mode)
        for row in self.rows:
            if row.mode is mode and row.answer_mode is answer_mode:
                return row
        raise KeyError(f"{mode.value}/{answer_mode.value} was not evaluated")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: settings, notes, summary rows, curves and one row per question."""
        data = {
            "source": self.source,
            "settings": self.settings,
            "notes": list(self.notes),
            "summary": [dataclasses.asdict(r) for r in self.rows],
            "recall_curves": self.curves,
            "questions": [dataclasses.asdict(q) for q in self.questions],
        }
        return jsonable(data)
