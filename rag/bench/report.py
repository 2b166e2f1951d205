"""`rag bench`'s results as markdown tables and a latency/recall plot."""

from __future__ import annotations

from pathlib import Path

from rag.bench.common import markdown_table
from rag.bench.search import ANSWER_TARGET_MS

def format_markdown(results: dict, plot_name: str | None = None) -> str:
    """Return the results as markdown tables, headed by the machine they ran on."""
    m = results["machine"]
    roof = results["roofline"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, bf16 {'yes' if m['bf16'] else 'no'}; "
        f"torch {m['versions'].get('torch')}, faiss {m['versions'].get('faiss')}; {m['when']}"
        + (" (quick run)" if results["config"]["quick"] else ""),
        "",
        f"Roofline ({roof['size']}² matmul, {roof['threads']} threads): fp32 {roof['fp32_gflops']} GFLOP/s, "
        + (f"bf16 {roof['bf16_gflops']} GFLOP/s." if "bf16_gflops" in roof else "bf16 not native (not measured)."),
        "",
    ]
    b = results["build"]
    lines += [f"Seed index build from a cold cache (`rag index`, fresh process): **{b['seconds']} s** for "
              f"{b['units']} units of {b['chunks']} chunks ({b['units_per_s']} units/s, {b.get('backend', 'faiss')} {b['dense_kind']}).", ""]
    lines += markdown_table(["embedding backend", "precision", "texts", "tokens", "s", "cpu s", "passages/s",
                     "tokens/s", "GFLOP/s", "roofline"],
                    [[r["backend"], r["precision"], r["texts"], r["tokens"], r["seconds"], r["cpu_seconds"],
                      r["passages_per_s"], r["tokens_per_s"], r["gflops"], f"{100 * r['roofline']:.0f}%"]
                     for r in results["embed"]])
    stages = ["embed", "dense", "bm25", "fusion", "windows", "read", "answer", "total"]
    by_mode: dict[str, dict[str, dict]] = {}
    for r in results["queries"]:
        by_mode.setdefault(r["mode"], {})[r["stage"]] = r
    n = next(iter(results["queries"]), {}).get("n", 0)
    if results.get("question_embed"):
        lines += ["", f"Embedding one question, ms p50 / p95 over {n} gold questions (a long-lived process "
                  "such as `rag chat` uses torch bf16 when the CPU has it; a one-shot command the C engine):", ""]
        lines += markdown_table(["engine", "precision", "p50 ms", "p95 ms"],
                        [[r["engine"], r["precision"], r["p50_ms"], r["p95_ms"]] for r in results["question_embed"]])
    lines += ["", f"Query latency, warm, ms p50 / p95 over {n} gold questions:", ""]
    lines += markdown_table(["mode"] + stages,
                    [[mode] + [f"{s[st]['p50_ms']} / {s[st]['p95_ms']}" if st in s else "–" for st in stages]
                     for mode, s in by_mode.items()])
    lines += ["", "Vector search (Recall@10 against exact search; 'perturbed' = seed embeddings plus noise):", ""]
    lines += markdown_table(["data", "vectors", "index", "build s", "bytes/vector", "p50 ms", "Recall@10"],
                    [[r["data"], f"{r['size']:,}", r["kind"], r["build_s"], r["bytes_per_vector"], r["p50_ms"],
                      r["recall_at_10"]] for r in results["faiss"]])
    notes = []
    t = results.get("threshold") or {}
    if t:
        notes.append(f"exact search costs {t['flat_ms_per_1k_vectors']} ms per 1k vectors: it stays within "
                     f"{t['budget_ms']} ms (the {ANSWER_TARGET_MS:.0f} ms answer target less the other hybrid "
                     f"stages' p50) up to ~{t['suggested_exact_max']:,} vectors "
                     f"(the index uses flat up to {t['exact_search_max']:,})")
    lines += ["", "BM25 over synthetic chunks (seed sentences recombined; 30 results):", ""]
    lines += markdown_table(["chunks", "build s", "p50 ms", "p95 ms"],
                    [[f"{r['size']:,}", r["build_s"], r["p50_ms"], r["p95_ms"]] for r in results["bm25"]])
    notes += results["notes"]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    if plot_name:
        lines += ["", f"Plot: `{plot_name}` (latency and recall against corpus size)."]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> Path | None:
    """Draw p50 latency and Recall@10 against corpus size per index kind; return the PNG path."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on servers and in CI
        import matplotlib.pyplot as plt
    except ImportError:
        results["notes"].append("matplotlib is missing: no plot (pip install matplotlib)")
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for data, style in (("perturbed", "-o"), ("random", "--x")):
        for kind in ("flat", "hnsw", "ivf_sq8"):
            rows = sorted((r for r in results["faiss"] if r["data"] == data and r["kind"] == kind),
                          key=lambda r: r["size"])
            if rows:
                sizes = [r["size"] for r in rows]
                label = f"{kind} ({data})"
                left.plot(sizes, [r["p50_ms"] for r in rows], style, label=label)
                right.plot(sizes, [r["recall_at_10"] for r in rows], style, label=label)
    bm25 = results.get("bm25") or []
    if bm25:
        left.plot([r["size"] for r in bm25], [r["p50_ms"] for r in bm25], ":s", label="bm25 (chunks)")
    left.set(xscale="log", yscale="log", xlabel="corpus size", ylabel="p50 latency (ms)", title="Search latency")
    right.set(xscale="log", xlabel="corpus size", ylabel="Recall@10 vs exact", title="Recall", ylim=(0, 1.02))
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
