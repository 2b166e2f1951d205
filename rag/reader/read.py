"""Run the reader over windows: batched, no gradients, the best span of each window."""

from __future__ import annotations

from rag.embed import usable_cores
from rag.reader.model import ReaderModel, numpy_logits
from rag.reader.windows import Span, Window, best_span

_TOKENS_PER_BATCH = 2048


def read_windows(model: ReaderModel, windows: list[Window], threads: int | None = None) -> list[Span | None]:
    """Return the best span (with its answerability and ranking logits) of every window, in order."""
    import torch

    out: list[Span | None] = [None] * len(windows)
    order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))
    batches, batch, width = [], [], 0
    for i in order:
        width = max(width, len(windows[i].ids))
        if batch and width * (len(batch) + 1) > _TOKENS_PER_BATCH:
            batches.append(batch)
            batch, width = [], len(windows[i].ids)
        batch.append(i)
    if batch:
        batches.append(batch)
    ranked = model.net.rank is not None  # without a ranking head, `rank` repeats answerability
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or usable_cores())
    try:
        with torch.inference_mode():
            for batch in batches:
                start, end, answerable, rank = numpy_logits(model.forward([list(windows[i].ids) for i in batch]))
                for row, i in enumerate(batch):
                    out[i] = best_span(windows[i], start[row], end[row], answerable[row], rank[row] if ranked else None)
    finally:
        torch.set_num_threads(previous)
    return out
