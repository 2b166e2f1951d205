"""Images (.png, .jpg): the text OCR reads, each line with its confidence."""

from __future__ import annotations

import io
import re

from rag.convert.limits import EMPTY, MAX_IMAGE_PIXELS, NO_OCR, TOO_LARGE, Budget, ConversionError
from rag.convert.ocr import add_ocr_lines
from rag.convert.result import Converted, TextBuilder


def image_text(data: bytes, name: str = "图片", progress=None) -> Converted:
    """Return the text OCR reads in a .png/.jpg image, each line's confidence kept; raise ConversionError."""
    from PIL import Image, UnidentifiedImageError

    from rag.convert import ocr

    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ConversionError(f"{name} 有 {image.width}×{image.height} 像素，超过了 {MAX_IMAGE_PIXELS // 1_000_000} 百万像素的上限", TOO_LARGE)
        image.load()
    except ConversionError:
        raise
    except Image.DecompressionBombError as exc:
        # Pillow refuses images past twice its own limit before saying their size; its message states the pixels.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found[1]) / 1_000_000:,.0f} 百万" if found else "过多的"
        raise ConversionError(f"{name} 有 {pixels}像素，超过了 {MAX_IMAGE_PIXELS // 1_000_000} 百万像素的上限",
                              TOO_LARGE) from exc
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ConversionError(f"无法读取 {name}：不是有效的图片（{type(exc).__name__}）") from exc
    try:
        if progress:
            progress("OCR", 0, 1)
        lines = ocr.read_image(image)
    except ocr.OCRUnavailable as exc:
        raise ConversionError(f"{name} 是图片：{exc}", NO_OCR) from exc
    if progress:
        progress("OCR", 1, 1)
    builder = TextBuilder(budget=Budget(name))
    add_ocr_lines(builder, lines)
    if not builder.text.strip():
        raise ConversionError(f"{name} 中没有识别出文字", EMPTY)
    return Converted(builder.text, tuple(builder.regions), notes=("图片，经OCR识别",))


