"""The evaluation's plots: Recall@k curves per retrieval mode, and answer containment per question type."""

from __future__ import annotations

from pathlib import Path

from rag.evaluation.metrics import unique
from rag.evaluation.results import EvalReport

def make_plots(report: EvalReport, folder: Path) -> list[Path]:
    """Draw Recall@k curves per mode and per-type answer containment; return the PNG paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; must precede pyplot
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("plots need matplotlib: pip install matplotlib") from exc
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, curve in report.curves.items():
        ax.plot(range(1, len(curve) + 1), curve, marker="o", label=mode)
    ax.set(xlabel="k (passages retrieved)", ylabel="Recall@k", ylim=(0, 1.02),
           title=f"Recall@k — {Path(report.source).name}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(folder / "recall_at_k.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    types = [t for t in unique([q.type for q in report.questions if q.answerable])]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(types) * max(1, len(report.rows)) / 2), 4))
    width = 0.8 / max(1, len(report.rows))
    for i, row in enumerate(report.rows):
        values = [row.by_type.get(t, {}).get("containment") or 0.0 for t in types]
        ax.bar([x + i * width for x in range(len(types))], values, width, label=row.label)
    ax.set_xticks([x + width * (len(report.rows) - 1) / 2 for x in range(len(types))], types)
    ax.set(ylabel="answer containment", ylim=(0, 1.02), title="Answer containment by question type")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "containment_by_type.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
