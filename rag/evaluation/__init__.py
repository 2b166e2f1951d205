"""`rag eval`: score retrieval, answers, citations, abstention and latency against gold questions.

gold (the question file) → evidence (where each answer's passage is in the index) → runner (ask,
retrieve, score) → metrics (per question, then per configuration) → results → report and plots.
squad reads SQuAD-format files (CMRC, DRCD, XQuAD) into the same shape. The entry points are
re-exported here, so callers import `rag.evaluation` and need not know the layout.
"""

from rag.evaluation.gold import Evidence, GoldError, GoldItem, load_gold, parse_gold
from rag.evaluation.report import default_out_dir, format_table, render_markdown, write_latest, write_report
from rag.evaluation.results import EvalReport, QuestionResult, SummaryRow
from rag.evaluation.runner import Evaluator, parse_choices, run_eval, run_squad_eval, squad_index

__all__ = [
    "EvalReport", "Evaluator", "Evidence", "GoldError", "GoldItem", "QuestionResult", "SummaryRow", "default_out_dir",
    "format_table",
    "load_gold", "parse_choices", "parse_gold", "render_markdown", "run_eval", "run_squad_eval", "squad_index",
    "write_latest", "write_report",
]
