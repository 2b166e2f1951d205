"""What a conversion may read and produce, in one place, and the budget that enforces it while it runs.

Checking sizes only after a conversion finished let 2 KB files expand to gigabytes (a sparse .xlsx
read cell by cell over A1:XFD2000, a merged range A1:XFD50000, colspan/rowspan 100 on 3,000 cells,
gridSpan 10,000,000): the budget is therefore charged inside the loops, by what is produced.
Messages are Chinese (the page shows them); `kind` is the English reason the CLI prints.
"""

from __future__ import annotations

import time

_MB = 1024 * 1024
MAX_UPLOAD_BYTES = 5 * _MB
MAX_FILE_BYTES = MAX_UPLOAD_BYTES  # a file in a documents folder, text or not: what an upload may be
# A 2.6 MB .docx whose XML expanded to 36 MB once became a 34.5 MB .txt (~70 s, 2.6 GB of memory).
# Measured with python-docx: 8.4 MB of document XML (20,000 paragraphs) converts in ~4.6 s using
# ~100 MB, so 20 MB unpacked bounds a conversion to ~10-15 s; real .docx files unpack to 3-10x their size.
MAX_CONVERTED_BYTES = MAX_UPLOAD_BYTES  # the stored text: no more than a text upload may hold
MAX_PDF_PAGES = 500  # pypdf reads 4-50 ms per page
MAX_DOCX_PARAGRAPHS = 30_000
MAX_ZIP_UNCOMPRESSED = 20 * _MB
MAX_ZIP_RATIO = 100  # unpacked size over file size; zip bombs reach ~1000
MAX_OCR_PAGES = 30  # ~4 s a page on two cores: two minutes at most
MAX_IMAGE_PIXELS = 40_000_000
MAX_TABLE_ROWS = 50_000
# Grid cells a file's tables may fill once merged cells are repeated: 1M cells of a few characters
# is already more text than MAX_CONVERTED_BYTES, and stays ~100 MB as Python strings.
MAX_CELLS = 1_000_000
CONVERT_SECONDS = 60.0  # wall time of one file's conversion, OCR pages apart (MAX_OCR_PAGES bounds those)

# Why a file was not indexed, as `rag index` lists it (the knowledge base's page says them in Chinese).
UNSUPPORTED, TOO_LARGE, DAMAGED, ENCRYPTED, EMPTY, TIMED_OUT, NO_OCR = (
    "unsupported type", "too large", "damaged", "encrypted", "empty", "timed out", "needs OCR, not installed")
DUPLICATE = "duplicate"  # not a conversion's: the same name or text as another file of the folder
REASONS = (UNSUPPORTED, TOO_LARGE, DAMAGED, ENCRYPTED, EMPTY, TIMED_OUT, NO_OCR, DUPLICATE)


class ConversionError(ValueError):
    """A file was refused; the (Chinese) message says why and what to do, `kind` names the reason."""

    def __init__(self, message: str, kind: str = DAMAGED) -> None:
        super().__init__(message)
        self.kind = kind


def megabytes(size: int) -> str:
    """Return a size in MB with one decimal, as messages state it."""
    return f"{size / _MB:.1f}"


def too_much_text(name: str, size: int, partial: bool = False) -> ConversionError:
    """Return the error for a conversion that produced more text than MAX_CONVERTED_BYTES."""
    amount = f"超过 {size / _MB:.1f} MB" if partial else f"有 {size / _MB:.1f} MB"
    return ConversionError(f"{name} 转换出的文字{amount}，超过了 {MAX_CONVERTED_BYTES // _MB} MB 的上限："
                           "请拆分后再上传", TOO_LARGE)


class Budget:
    """What one file's conversion may still spend: bytes of text emitted, grid cells filled, seconds."""

    def __init__(self, name: str = "文件", seconds: float | None = None) -> None:
        self.name = name
        self.text_bytes = 0
        self.cells = 0
        # Read at call time, so tests (and a future setting) can lower the module's limits.
        self.max_text = MAX_CONVERTED_BYTES
        self.max_cells = MAX_CELLS
        self.seconds = CONVERT_SECONDS if seconds is None else seconds
        self.deadline = time.monotonic() + self.seconds

    def emit(self, text: str) -> None:
        """Charge `text` added to the stored text; raise ConversionError past the limit or the deadline."""
        self.text_bytes += len(text.encode("utf-8"))
        if self.text_bytes > self.max_text:
            raise too_much_text(self.name, self.text_bytes, partial=True)
        self.tick()

    def fill(self, cells: int) -> None:
        """Charge `cells` grid cells about to be filled; raise ConversionError past the limit or the deadline."""
        self.cells += cells
        if self.cells > self.max_cells:
            raise ConversionError(f"{self.name} 的表格展开后超过 {self.max_cells:,} 个单元格（合并单元格或稀疏表格过大）："
                                  "请拆分或整理后再上传", TOO_LARGE)
        self.tick()

    def tick(self) -> None:
        """Raise ConversionError when the conversion has run past its time budget."""
        if time.monotonic() > self.deadline:
            raise ConversionError(f"{self.name} 转换超时（上限 {self.seconds:.0f} 秒）：文件过于复杂，请拆分后再上传",
                                  TIMED_OUT)
