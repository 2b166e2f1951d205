"""The reader's forward pass on the windows the gold questions really read, in fp32 and the variants tried.

Captures the reading windows of eval/gold.jsonl's questions (hybrid retrieval, the reader answerer),
then times, side by side in one process: the batched fp32 pass the answerer uses, one window per
pass, int8 dynamic quantization of the encoder's linear layers (one activation scale per tensor),
and int8 with one activation scale per token (`torch._int_mm`); for each variant, how often it
picks the same window and the same span as fp32, and how far its answerability logits move.

    python scripts/reader_speed.py INDEX_DIR      # an index of seeds/ (rag index --docs seeds --index DIR)
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import rag.reader.read as read_module
from rag.answer import Answerer
from rag.index import load_index
from rag.paths import SHIPPED_READER
from rag.reader.model import ReaderModel
from rag.reader.reader import Reader

GOLD = Path(__file__).resolve().parent.parent / "eval" / "gold.jsonl"


def captured_windows(index_dir: Path) -> list[list]:
    """Every question's reading windows, as the answerer hands them to the reader."""
    captured, read_windows = [], read_module.read_windows

    def spy(model, windows, threads=None):
        captured.append(list(windows))
        return read_windows(model, windows, threads)

    read_module.read_windows = spy
    try:
        answerer = Answerer(load_index(index_dir, long_lived=True), reader=Reader())
        for line in GOLD.read_text(encoding="utf-8").splitlines():
            answerer.run(json.loads(line)["question"], mode="hybrid", answer_mode="reader")
    finally:
        read_module.read_windows = read_windows
    return captured


def per_token_int8(encoder) -> None:
    """Replace the encoder's matrices by int8 ones: a scale per output channel, and per token at run time.

    One scale per token keeps e5's few large activations from flattening every other token to a
    handful of levels, as one scale per tensor does.
    """
    import torch

    class Int8Linear(torch.nn.Module):
        def __init__(self, linear) -> None:
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.weight_t = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).t().contiguous()
            self.weight_scale, self.bias = scale, linear.bias.detach().float().clone()

        def forward(self, x):
            rows = x.reshape(-1, x.shape[-1]).float()
            scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
            q = torch.round(rows / scale).clamp(-127, 127).to(torch.int8)
            y = torch._int_mm(q, self.weight_t).float() * scale * self.weight_scale + self.bias
            return y.reshape(*x.shape[:-1], y.shape[-1])

    for name in ("qkv", "out", "up", "down"):
        modules = getattr(encoder, name)
        for i in range(len(modules)):
            modules[i] = Int8Linear(modules[i])


def timed(model: ReaderModel, questions: list[list], one_by_one: bool) -> tuple[float, float, list]:
    """p50 and p95 ms per question, and every question's spans."""
    read = read_module.read_windows
    read(model, questions[0])  # warm: kernels for these shapes
    times, spans = [], []
    for windows in questions:
        began = time.perf_counter()
        spans.append([read(model, [w])[0] for w in windows] if one_by_one else read(model, windows))
        times.append((time.perf_counter() - began) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), spans


def picked(spans: list):
    return max(spans, key=lambda s: s.order if s else -1e9)


def main(index_dir: Path) -> None:
    import torch

    questions = [q for q in captured_windows(index_dir) if q]
    tokens = [sum(len(w.ids) for w in q) for q in questions]
    print(f"{len(questions)} questions read; {np.mean([len(q) for q in questions]):.2f} windows and "
          f"{np.median(tokens):.0f} tokens per question (p50)")
    fp32 = ReaderModel.load(SHIPPED_READER, bf16=False)
    int8 = ReaderModel.load(SHIPPED_READER, bf16=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated; it is what exists in-tree
        int8.net.encoder = torch.ao.quantization.quantize_dynamic(int8.net.encoder, {torch.nn.Linear}, dtype=torch.qint8)
    per_token = ReaderModel.load(SHIPPED_READER, bf16=False)
    per_token_int8(per_token.net.encoder)
    p50, p95, base = timed(fp32, questions, one_by_one=False)
    print(f"fp32, batched (the answerer's pass): {p50:.1f} / {p95:.1f} ms p50 / p95")
    for name, model, one_by_one in (("fp32, one window per pass", fp32, True), ("int8 dynamic, batched", int8, False),
                                   ("int8 per token, batched", per_token, False)):
        p50, p95, spans = timed(model, questions, one_by_one)
        same_window = np.mean([picked(a) is not None and picked(b) is not None and a.index(picked(a)) == b.index(picked(b))
                               for a, b in zip(base, spans)])
        same_span = np.mean([(picked(a).start, picked(a).end) == (picked(b).start, picked(b).end)
                             for a, b in zip(base, spans) if picked(a) and picked(b)])
        moved = [abs(x.answerable - y.answerable) for a, b in zip(base, spans) for x, y in zip(a, b) if x and y]
        print(f"{name}: {p50:.1f} / {p95:.1f} ms; same window {same_window:.3f}, same span {same_span:.3f}, "
              f"answerability logit moved {np.mean(moved):.2f} on average ({np.max(moved):.2f} at most)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
