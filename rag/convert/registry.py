"""The one conversion road: which converter reads which suffix, and `convert`, which every caller uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from rag.convert import limits
from rag.convert.limits import TOO_LARGE, UNSUPPORTED, ConversionError, megabytes, too_much_text
from rag.convert.result import Converted
from rag.load import TEXT_SUFFIXES

Progress = Callable[[str, int, int], None]

# Converter modules are imported on first use: pypdf, python-docx, lxml and OCR stay out of `import rag`.
_CONVERTERS = {
    ".pdf": ("rag.convert.pdf", "pdf_text"),
    ".docx": ("rag.convert.office", "docx_text"),
    ".xlsx": ("rag.convert.office", "xlsx_text"),
    ".html": ("rag.convert.html", "html_text"),
    ".htm": ("rag.convert.html", "html_text"),
    ".csv": ("rag.convert.csv", "csv_text"),
    ".png": ("rag.convert.image", "image_text"),
    ".jpg": ("rag.convert.image", "image_text"),
    ".jpeg": ("rag.convert.image", "image_text"),
}
CONVERTED_SUFFIXES = tuple(_CONVERTERS)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + CONVERTED_SUFFIXES
# Bumped whenever a converter's output changes, so cached conversions are made again.
CONVERTER_VERSION = "1"


def converter(suffix: str) -> Callable[..., Converted]:
    """Return the function converting files with `suffix`; raise ConversionError for an unsupported type."""
    try:
        module, function = _CONVERTERS[suffix.lower()]
    except KeyError:
        raise ConversionError(f"不支持的文件类型“{suffix}”", UNSUPPORTED) from None
    return getattr(importlib.import_module(module), function)


def convert(data: bytes, name: str, progress: Progress | None = None) -> Converted:
    """Return the text, regions and metadata of file `name` (not .txt/.md); raise ConversionError with the reason.

    `progress(stage, done, total)` hears about long conversions (OCR, page by page).
    """
    if len(data) > limits.MAX_FILE_BYTES:
        raise ConversionError(f"{name} 有 {megabytes(len(data))} MB，超过了 {limits.MAX_FILE_BYTES // 1024 // 1024} MB 的上限",
                              TOO_LARGE)
    result = converter(Path(name).suffix)(data, name, progress)
    size = len(result.text.encode("utf-8"))
    if size > limits.MAX_CONVERTED_BYTES:  # the budget bounds every loop; this catches a converter that bypassed it
        raise too_much_text(name, size)
    return Converted(result.text, result.regions, result.title, result.date, name, result.notes)
