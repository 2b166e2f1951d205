"""Gradio's upload folder: which paths lie inside it, reading a saved upload, and removing it once handled."""

from __future__ import annotations

from pathlib import Path


def in_upload_folder(path: str | Path, upload_dir: Path) -> bool:
    """True when `path` (symlinks and `..` resolved) lies inside Gradio's upload folder."""
    try:
        return Path(upload_dir).resolve() in Path(path).resolve().parents
    except OSError:
        return False


def discard_upload(path: str | Path, upload_dir: Path) -> bool:
    """Remove a file Gradio saved for an upload, and its folder when empty; return True if it was removed.

    Gradio keeps every uploaded file (`<upload_dir>/<hash>/<name>`) until its own cache cleanup, which
    this app does not enable: a refused upload would otherwise stay there for good, and an accepted one
    twice, once in the documents folder. Anything outside `upload_dir` is left alone.
    """
    path = Path(path)
    if not in_upload_folder(path, upload_dir) or not path.is_file():
        return False
    root, real = Path(upload_dir).resolve(), path.resolve()
    path.unlink(missing_ok=True)
    if real.parent != root:
        try:
            real.parent.rmdir()  # only when empty: another upload with the same content may still be there
        except OSError:
            pass
    return True


GONE = "无法读取上传的文件（同时上传的相同文件可能已先处理完并清除了它），请重新上传"


def saved_bytes(path: Path) -> bytes | None:
    """Return the bytes of a file Gradio saved for an upload, or None when it cannot be read.

    Gradio names saved uploads by content: an identical file sent from another page at the same
    moment shares the copy, which is removed once that upload has been handled.
    """
    try:
        return path.read_bytes()
    except OSError:
        return None
