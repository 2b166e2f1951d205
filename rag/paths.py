"""Where the user's knowledge base lives: the one place that decides the default folders.

The documents and the index live in a data folder outside the source tree, so running the app never
modifies the checkout: `RAG_HOME` (default `$XDG_DATA_HOME/wenyu`, else `~/.local/share/wenyu`) holds
`documents/`, `index/` and `reports/`. `RAG_DOCS` and `RAG_INDEX` name either folder directly (and `--docs`,
`--index` win over both). The first use of the default documents folder creates it with copies of the
seed articles, `seeds/` in the source tree, which is never written to. `RAG_READER` names a reader
adapter folder to use instead of the shipped one.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
SHIPPED_READER = Path(__file__).resolve().parent / "data" / "reader"


def data_home(environ: dict[str, str] | None = None) -> Path:
    """Return the data folder: RAG_HOME, else $XDG_DATA_HOME/wenyu, else ~/.local/share/wenyu."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_HOME"):
        return Path(environ["RAG_HOME"]).expanduser()
    xdg = environ.get("XDG_DATA_HOME")
    # The XDG spec ignores a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "wenyu"


def default_index_dir(environ: dict[str, str] | None = None) -> Path:
    """Return the default index folder: RAG_INDEX, else RAG_HOME/index."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_INDEX"):
        return Path(environ["RAG_INDEX"]).expanduser()
    return data_home(environ) / "index"


def reports_dir(environ: dict[str, str] | None = None) -> Path:
    """Return where reports of a user's runs go (`rag eval`, `rag bench`, the page's 评测 tab): RAG_HOME/reports."""
    return data_home(environ) / "reports"


def reader_dir(environ: dict[str, str] | None = None) -> Path:
    """Return the reader's adapter folder: RAG_READER (one trained with `rag train-reader --out`), else the shipped one."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_READER"):
        return Path(environ["RAG_READER"]).expanduser()
    return SHIPPED_READER


def default_docs_dir(environ: dict[str, str] | None = None, seeds: Path = SEEDS) -> Path:
    """Return the default documents folder (RAG_DOCS, else RAG_HOME/documents), seeding the latter if new."""
    environ = os.environ if environ is None else environ
    if environ.get("RAG_DOCS"):
        return Path(environ["RAG_DOCS"]).expanduser()  # the user's own folder: used as it is
    folder = data_home(environ) / "documents"
    if not folder.exists():
        seed_documents(folder, seeds)
    return folder


def seed_documents(folder: Path, seeds: Path = SEEDS) -> int:
    """Create `folder` with copies of the seed files; return how many were copied."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in seeds.iterdir() if p.is_file() and not p.name.startswith(".")) if seeds.is_dir() else []
    # Copied beside the target and renamed into place: an interrupted first run leaves no half-seeded
    # folder, which would otherwise count as "already created" on the next run.
    staging = Path(tempfile.mkdtemp(prefix=".documents-", dir=folder.parent))
    try:
        for path in files:
            shutil.copy2(path, staging / path.name)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not folder.is_dir():
            raise
        return 0  # another process seeded it first
    print(f"新建知识库 / new knowledge base: {folder} ({len(files)} 篇示例文档 copied from {seeds})", file=sys.stderr)
    return len(files)
