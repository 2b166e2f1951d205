"""Read text from images and image-only PDF pages with RapidOCR (PP-OCR models inside its wheel, offline).

Part of the default install (onnxruntime and OpenCV, ~395 MB installed); where it cannot load (a
platform without onnxruntime wheels) a scan is refused with a message saying what to install. One recognizer is loaded per process, on first use.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

OCR_INSTALL = "pip install rapidocr-onnxruntime"
LOW_CONFIDENCE = 0.8  # below this a line is marked in the source viewer as possibly misread
RENDER_SCALE = 2.0  # PDF points to pixels: 144 dpi, where PP-OCR reads body text reliably
_lock = threading.Lock()  # onnxruntime sessions are shared; one page at a time keeps memory flat


class OCRUnavailable(RuntimeError):
    """The OCR extra is not installed."""


@dataclass(frozen=True)
class OCRLine:
    """One recognized line: its text, the recognizer's confidence (0..1) and its top-left corner in pixels."""

    text: str
    confidence: float
    top: float
    left: float


@functools.lru_cache(maxsize=1)
def _engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise OCRUnavailable(f"识别扫描件和图片需要 OCR 组件，当前未安装：{OCR_INSTALL}") from exc
    return RapidOCR()


def available() -> bool:
    """Return True when the OCR extra can be imported."""
    try:
        _engine()
    except OCRUnavailable:
        return False
    return True


def read_image(image) -> list[OCRLine]:
    """Return the lines of a PIL image in reading order (top to bottom, then left to right)."""
    import numpy as np

    array = np.asarray(image.convert("RGB"))[:, :, ::-1]  # RapidOCR takes OpenCV's BGR order
    with _lock:
        result, _ = _engine()(array)
    lines = []
    for box, text, score in result or []:
        text = " ".join(str(text).split())
        if text:
            lines.append(OCRLine(text, float(score), min(p[1] for p in box), min(p[0] for p in box)))
    # Boxes whose tops lie within half a line of each other are one line of print, read left to right.
    lines.sort(key=lambda line: (line.top, line.left))
    ordered: list[OCRLine] = []
    row: list[OCRLine] = []
    for line in lines:
        if row and line.top - row[0].top > 12:
            ordered.extend(sorted(row, key=lambda x: x.left))
            row = []
        row.append(line)
    ordered.extend(sorted(row, key=lambda x: x.left))
    return ordered


def render_pdf_pages(data: bytes, numbers: list[int]):
    """Yield (page number, PIL image) for the 0-based page `numbers` of a PDF, rendered with pypdfium2."""
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:
        raise OCRUnavailable(f"识别扫描件需要 pypdfium2：{OCR_INSTALL}") from exc
    document = pdfium.PdfDocument(data)
    try:
        for number in numbers:
            page = document[number]
            try:
                yield number, page.render(scale=RENDER_SCALE).to_pil()
            finally:
                page.close()
    finally:
        document.close()


def add_ocr_lines(builder, lines: list) -> tuple[int, int]:
    """Append OCR lines (the first after a paragraph break) with their confidences; return their span."""
    start = None
    end = builder.size
    for k, line in enumerate(lines):
        span = builder.add(line.text, "\n\n" if k == 0 else "\n")
        start = span[0] if start is None else start
        builder.mark("ocr", span, "", line.confidence)
        end = span[1]
    return (start if start is not None else builder.size), end
