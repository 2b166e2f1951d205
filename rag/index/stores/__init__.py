"""Search backends, picked by name: each writes a build's dense and keyword stores and opens them again.

The protocols are in `base.py`; one file per backend: FAISS + bm25s in the build folder (`faiss.py`,
with `bm25.py`; the default) or Qdrant (`qdrant.py`). Only this package knows the backends' names.
"""

from __future__ import annotations

import importlib

from rag.index.stores.base import (BuildVectors, DamagedStoreFile, DenseStore, KeywordStore, StoreBackend,
                                   StoreBuild, StoredBuild)

# One line per backend: the name rag.toml's [store] backend, `rag index --store` and the manifest use, and
# where its class is (the default first). Imported on first use: a backend's module may import the rest of
# rag.index, and config and the CLI read the names without loading any backend.
_BACKENDS = {
    "faiss": "rag.index.stores.faiss:FaissBackend",
    "qdrant": "rag.index.stores.qdrant:QdrantBackend",
}
DEFAULT_BACKEND = "faiss"
# What builds before the manifest named its store (issue 13) were written with.
_UNNAMED = {"backend": "faiss"}


def backend_names() -> tuple[str, ...]:
    """Return the names of the registered backends, the default first."""
    return tuple(_BACKENDS)


def backend(name: str) -> StoreBackend:
    """Return the backend registered as `name`; raise ValueError naming the known ones."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown store backend {name!r}: use one of {', '.join(backend_names())}")
    module, _, cls = _BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def manifest_entry(manifest: dict) -> dict:
    """Return a manifest's "store" entry; builds from before it was written get FAISS + bm25s."""
    return manifest.get("store", _UNNAMED)


def valid_entry(entry) -> bool:
    """True when `entry` is a manifest "store" entry that names a known backend, with the fields it reads."""
    return (isinstance(entry, dict) and isinstance(entry.get("backend"), str) and entry["backend"] in _BACKENDS
            and backend(entry["backend"]).valid_entry(entry))


__all__ = ["DEFAULT_BACKEND", "BuildVectors", "DamagedStoreFile", "DenseStore", "KeywordStore", "StoreBackend",
           "StoreBuild", "StoredBuild", "backend", "backend_names", "manifest_entry", "valid_entry"]
