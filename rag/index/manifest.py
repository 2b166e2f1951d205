"""The live build of an index folder and its manifest: the CURRENT pointer, reading and checking it.

Layout of an index folder:
    CURRENT                 name of the live build (switched with one atomic rename)
    builds/<id>/            manifest.json, documents.json, chunks.jsonl, units.npy, userdict.txt and the
                            backend's files (FAISS: vectors.faiss, unit_vectors.npy, bm25/; Qdrant: terms.json)
    cache/                  passage vectors by (model, text hash), shared by every build
    build.lock              flock'ed by the one build running; names its pid
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from rag.index.stores import manifest_entry, valid_entry
from rag.index.stores.faiss import DENSE_KINDS

FORMAT_VERSION = 1
NORMALIZATION = {"unicode": "NFKC", "chinese": "opencc t2s", "case": "lower", "tokenizer": "jieba"}


class IndexProblem(RuntimeError):
    """The index is missing, broken, or does not match the corpus or model."""


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
        raise damaged(index_dir, "CURRENT does not name a build")
    build = index_dir / "builds" / name
    if not (build / "manifest.json").exists():
        raise IndexProblem(f"the index in {index_dir} is incomplete or damaged: run `rag index` to rebuild it")
    return build


def read_manifest(index_dir: Path) -> dict:
    """Return the manifest of the live build."""
    with open(current_build(index_dir) / "manifest.json", encoding="utf-8") as f:
        return json.load(f)


def damaged(index_dir: Path, what: str) -> IndexProblem:
    """Return the error for a damaged index folder, naming what is wrong and what to run."""
    return IndexProblem(f"the index in {index_dir} is damaged ({what}): run `rag index` to rebuild it")


def strict_int(value) -> int:
    """Return `value` if it is a true int (not a bool), else -1."""
    return value if type(value) is int else -1


def check_manifest(manifest) -> None:
    """Raise ValueError unless `manifest` has every field a load needs, of the right type."""
    if not isinstance(manifest, dict):
        raise ValueError("not an object")
    embedder, dense, counts = (manifest.get(k) if isinstance(manifest.get(k), dict) else {}
                               for k in ("embedder", "dense", "counts"))
    files = manifest.get("files")
    if not (isinstance(embedder.get("id"), str) and strict_int(embedder.get("dim")) > 0
            and dense.get("kind") in DENSE_KINDS and strict_int(dense.get("size")) >= 0
            and strict_int(counts.get("documents")) >= 0 and strict_int(counts.get("chunks")) >= 0
            and isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
            and isinstance(manifest.get("chunking"), dict) and isinstance(manifest.get("skipped", {}), dict)
            and valid_entry(manifest_entry(manifest))):
        raise ValueError("a field is missing or of the wrong type")


def write_json(path: Path, data) -> None:
    """Write `data` as UTF-8 JSON to `path`."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)


def switch_current(index_dir: Path, build_id: str) -> None:
    """Make `build_id` the live build of `index_dir` with one atomic rename."""
    tmp = index_dir / f".CURRENT-{uuid.uuid4().hex[:6]}"
    tmp.write_text(build_id + "\n", encoding="utf-8")
    os.replace(tmp, index_dir / "CURRENT")
