"""The 评测 tab's handlers: run the gold-set evaluation on the live index, and its tables and plots."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

import rag
from rag.app.api import refusal
from rag.app.render import MARKER, md_text, page_note
from rag.app.state import PageState
from rag.paths import reports_dir
from rag.types import AnswerMode

# The gold set ships beside the package, wherever the page is started from.
GOLD_PATH = Path(rag.__file__).resolve().parent.parent / "eval" / "gold.jsonl"


class EvaluationTab:
    """The evaluation's handlers; reports go to the data folder (RAG_HOME/reports/eval), never into the checkout."""

    def __init__(self, state: PageState, gold_path: Path | None = None, eval_dir: Path | None = None) -> None:
        self.state = state
        self.gold_path = Path(gold_path) if gold_path else GOLD_PATH
        self.eval_dir = Path(eval_dir) if eval_dir else reports_dir() / "eval"  # where `rag eval` writes, too

    def evaluation_available(self) -> bool:
        """True when the evaluation module is installed and the gold set exists."""
        try:
            import rag.evaluation  # noqa: F401
        except ImportError:
            return False
        return self.gold_path.exists()

    def run_evaluation(self, modes: list[str], answer_modes: list[str], k: float, limit: float | None,
                       progress=gr.Progress()):
        """Run the gold-set evaluation on the live index; return status, summary, plots, question rows, configs."""
        from rag import evaluation as evaluate

        if not modes:
            raise refusal("请至少选择一种检索方式。")

        def update(stage: str, done: int, total: int) -> None:
            progress((done, total), desc=f"{stage}")

        started = time.monotonic()
        try:
            report = evaluate.run_eval(
                self.state.kb.index, self.gold_path, modes=modes, answer_modes=answer_modes or [AnswerMode.READER.value],
                k=int(k), out_dir=self.eval_dir, progress=update, limit=int(limit) if limit else None,
                settings=self.state.settings,
            )
        except (evaluate.GoldError, ValueError) as exc:
            raise gr.Error(f"评测无法运行：{exc}", title="出错了") from exc
        images = [(_image(p), p.stem) for p in report.plots]
        lines = [f"完成：{report.settings['questions']} 题 × {len(report.rows)} 种配置，用时 {time.monotonic() - started:.1f} 秒。"
                 f"报告：{report.report_dir}/report.md"]
        lines += [f"注：{page_note(note)}" for note in report.notes]
        configs = ["全部配置"] + [row.label for row in report.rows]
        return ("\n\n".join(md_text(line) for line in lines), summary_rows(report), images,
                question_rows(report), gr.update(choices=configs, value="全部配置"))


EVAL_COLUMNS = (
    ("配置", None), ("R@1", "recall@1"), ("R@5", "recall@5"), ("R@k", "recall@{k}"), ("MRR@k", "mrr@{k}"),
    ("nDCG@k", "ndcg@{k}"), ("包含率", "containment"), ("短答EM", "em"), ("短答F1", "short_f1"), ("F1", "f1"), ("引用精确率", "citation_precision"),
    ("引用召回率", "citation_recall"), ("拒答F1", "abstention_f1"), ("误拒率", "false_abstention"),
    ("平均用时(s)", "latency_mean"),
)
QUESTION_COLUMNS = ["id", "配置", "类型", "问题", "回答", "结果", "首个相关排名", "置信度", "用时(s)"]


def summary_rows(report) -> list[list]:
    """Return one table row per evaluated configuration (metrics rounded; missing ones as "–")."""
    k = report.settings["k"]
    out = []
    for row in report.rows:
        cells = [row.label]
        for _, key in EVAL_COLUMNS[1:]:
            value = row.metrics.get(key.format(k=k))
            cells.append("–" if value is None else round(value, 3))
        out.append(cells)
    return out


def question_rows(report) -> list[list]:
    """Return one row per question and configuration; column 结果 says hit, miss, abstained or wrongly answered."""
    out = []
    for q in report.questions:
        answer = MARKER.sub("", q.answer)
        if q.error:
            verdict = "✗ 出错"
        elif q.answerable:
            verdict = "✗ 拒答" if q.abstained else ("✓ 命中" if q.scores.get("contains") else "✗ 未答对")
        else:
            verdict = "✓ 正确拒答" if q.abstained else "✗ 不该回答"
        rank = q.relevant_ranks[0] if q.relevant_ranks else "–"
        label = f"{q.mode.value}/{q.answer_mode.value}"
        out.append([q.id, label, q.type, q.question, "（拒答）" if q.abstained else answer, verdict, rank,
                    round(q.confidence, 2), round(q.latency, 2)])
    return out


def filter_questions(rows: list[list], only_misses: bool, config: str) -> list[list]:
    """Return the question rows of one configuration (or all), optionally only the misses."""
    return [r for r in rows if (not only_misses or r[5].startswith("✗")) and config in ("全部配置", r[1])]


def _image(path: Path):
    from PIL import Image

    # Handed over as pixels, so the page never needs file access to the reports folder.
    with Image.open(path) as image:
        return image.copy()
