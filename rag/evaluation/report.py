"""The evaluation report as text: the terminal table, the Markdown report, and the run folder written to disk."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from rag.evaluation.metrics import cutoffs, strip_markers
from rag.evaluation.plots import make_plots
from rag.evaluation.results import EvalReport
from rag.paths import reports_dir

def default_out_dir() -> Path:
    """Return where a run's reports go unless told otherwise: $RAG_HOME/reports/eval (never the checkout)."""
    return reports_dir() / "eval"


_TABLE = (
    ("MRR", "mrr@{k}"), ("nDCG", "ndcg@{k}"),
    ("Contain", "containment"), ("EM", "em"), ("sF1", "short_f1"), ("F1", "f1"), ("Len", "length"), ("CitP", "citation_precision"),
    ("CitR", "citation_recall"), ("AbsP", "abstention_precision"), ("AbsR", "abstention_recall"),
    ("AbsF1", "abstention_f1"), ("FalseAbs", "false_abstention"), ("Lat", "latency_mean"), ("p95", "latency_p95"),
)



def _columns(k: int) -> list[tuple[str, str]]:
    recall = [(f"R@{c}", f"recall@{c}") for c in cutoffs(k)]
    return recall + [(f"{head}@{k}" if "{k}" in key else head, key.format(k=k)) for head, key in _TABLE]


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return "–"
    if key == "length":
        return f"{value:.0f}"
    if key.startswith("latency"):
        return f"{value:.2f}s"
    return f"{value:.3f}"


def format_table(report: EvalReport) -> str:
    """Return the summary rows as an aligned plain-text table."""
    cols = _columns(report.settings["k"])
    header = ["config"] + [h for h, _ in cols]
    lines = [[row.label] + [_cell(key, row.metrics.get(key)) for _, key in cols] for row in report.rows]
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(report: EvalReport, plots_dir: str | None = ".") -> str:
    """Return the report as Markdown; plots are linked relative to `plots_dir` (None: not linked)."""
    k = report.settings["k"]
    s = report.settings
    out = [f"# Evaluation report — {Path(report.source).name}", ""]
    out.append(f"Run {s['created']} on {s['questions']} questions · index: {s['documents']} documents, "
               f"{s['chunks']} chunks ({s['embedder']}) · retrieval metrics at k={k} · "
               f"answers from the top {s['answer_k']} passages"
               + (f" · limit {s['limit']}" if s.get("limit") else "") + ".")
    out.append("")
    for note in report.notes:
        out.append(f"- {note}")
    if report.notes:
        out.append("")
    cols = _columns(k)
    out.append("## Summary")
    out.append("")
    out.append(_md_table(["config"] + [h for h, _ in cols],
                         [[r.label] + [_cell(key, r.metrics.get(key)) for _, key in cols] for r in report.rows]))
    out.append("")
    extra = [("doc R@5", "doc_recall@5"), (f"doc MRR@{k}", f"doc_mrr@{k}")]
    extra += [(f"multi both@{c}", f"multi_both@{c}") for c in cutoffs(k)] + [("contain ≤2 sentences", "containment_short")]
    out.append(_md_table(["config"] + [h for h, _ in extra] + ["answerable", "unanswerable", "abstained", "errors"],
                         [[r.label] + [_cell(key, r.metrics.get(key)) for _, key in extra]
                          + [str(r.counts[c]) for c in ("answerable", "unanswerable", "abstained", "errors")]
                          for r in report.rows]))
    out.append("")
    out.append(_METRIC_NOTES.format(k=k))
    group_cols = [("n", None), ("R@5", "recall@5"), (f"MRR@{k}", f"mrr@{k}"), ("Contain", "containment"),
                  ("CitP", "citation_precision"), ("abstained", None)]
    for title, attr in (("By question type", "by_type"), ("By question language", "by_language")):
        out += ["", f"## {title}", ""]
        for row in report.rows:
            groups = getattr(row, attr)
            rows = []
            for name, metrics in groups.items():
                members = [q for q in report.questions if q.mode is row.mode and q.answer_mode is row.answer_mode
                           and (q.type if attr == "by_type" else q.language) == name]
                cells = [name, str(len(members))]
                cells += [_cell(key, metrics.get(key)) for _, key in group_cols[1:-1]]
                cells.append(f"{sum(q.abstained for q in members)}/{len(members)}")
                rows.append(cells)
            out += [f"**{row.label}**", "", _md_table([attr[3:]] + [h for h, _ in group_cols], rows), ""]
    if plots_dir is not None and report.plots:
        out += ["## Plots", ""]
        out += [f"![{p.stem}]({plots_dir.rstrip('/')}/{p.name})" for p in report.plots]
        out.append("")
    out += _failures(report)
    return "\n".join(out).rstrip() + "\n"


_METRIC_NOTES = """\
R@n: share of answerable questions with a relevant chunk in the top n (multi: either piece; *multi both*:
all pieces; *doc*: any chunk of the evidence's document, as the SQuAD baselines count). MRR@{k}: mean 1/rank of the first relevant chunk. nDCG@{k}: gain = evidence pieces a chunk
newly covers, ideal = best ordering of the index's chunks. Contain: a gold answer occurs in the answer
(squashed: NFKC, Simplified, lower case, no whitespace; abstentions count as misses). F1: best
character-level F1 against a gold answer. Len: mean squashed characters of given answers. CitP: per
answered question, the share of cited passages (chunks of the citations) that hold the evidence or a gold
answer, averaged. CitR: share of answerable questions with at least one such citation. AbsP/AbsR/AbsF1:
abstention as a detector of unanswerable questions. FalseAbs: share of answerable questions abstained
on. Lat/p95: seconds per answer (mean, 95th percentile), on a shared CPU."""


def _failures(report: EvalReport, limit: int = 40) -> list[str]:
    out = []
    for row in report.rows:
        members = [q for q in report.questions if q.mode is row.mode and q.answer_mode is row.answer_mode]
        misses = []
        for q in members:
            if q.answerable and (q.abstained or not q.scores.get("contains")):
                rank = q.relevant_ranks[0] if q.relevant_ranks else "–"
                what = "abstained" if q.abstained else _short(strip_markers(q.answer))
                misses.append([q.id, q.type, _short(q.question, 30), str(rank), what])
            elif not q.answerable and not q.abstained:
                misses.append([q.id, q.type, _short(q.question, 30), "–", "answered: " + _short(strip_markers(q.answer))])
        if not misses:
            continue
        out += [f"## Misses — {row.label} ({len(misses)})", ""]
        out.append(_md_table(["id", "type", "question", "first relevant rank", "answer"], misses[:limit]))
        if len(misses) > limit:
            out.append(f"\n… and {len(misses) - limit} more (see results.json)")
        out.append("")
    return out


def _short(text: str, n: int = 50) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def write_report(report: EvalReport, out_dir: Path) -> EvalReport:
    """Write report.md, results.json and PNG plots into a new `out_dir/<timestamp>/`; return the report with their paths."""
    out_dir = Path(out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out_dir / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = out_dir / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    plots = make_plots(report, folder)
    report = dataclasses.replace(report, report_dir=folder, plots=tuple(plots))
    (folder / "report.md").write_text(render_markdown(report), encoding="utf-8")
    with open(folder / "results.json", "w", encoding="utf-8") as f:
        json.dump(report.to_dict(), f, ensure_ascii=False, indent=1)
    return report


def write_latest(report: EvalReport, path: Path) -> Path:
    """Write the Markdown summary to `path` and return it (the tracked eval/reports/latest.md: `--out eval/reports`)."""
    path = Path(path)
    text = render_markdown(report, plots_dir=None)  # run folders are git-ignored: no links into them
    if report.report_dir is not None:
        text += f"\nPlots and per-question results of this run: `{report.report_dir.name}/` (not committed).\n"
    path.write_text(text, encoding="utf-8")
    return path
