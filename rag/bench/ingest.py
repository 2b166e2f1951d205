"""`rag bench --ingest`: what reading documents costs here: OCR seconds per page, table rows indexed per second,
and table rows recovered per second from a PDF's text layer.

Inputs are made on the spot: pages of seed-article sentences drawn with Noto Sans CJK (fonts-noto-cjk)
and saved as an image-only PDF, an .xlsx of generated rows, and the same rows as ruled tables in a PDF
(ReportLab's STSong CID font). Nothing is downloaded.
"""

from __future__ import annotations

import datetime as dt
import difflib
import io
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.bench.common import out_folder
from rag.paths import SEEDS

FONT = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")


@dataclass(frozen=True)
class IngestConfig:
    """How much to read: scanned pages and spreadsheet rows; `quick` for a CI-sized run."""

    pages: int = 5
    rows: int = 1000
    quick: bool = False
    out_dir: Path | None = None  # None: $RAG_HOME/reports/bench

    @classmethod
    def quick_run(cls, **overrides) -> IngestConfig:
        """Return the settings of a quick run (two pages, 200 rows)."""
        return cls(**{"pages": 2, "rows": 200, "quick": True, **overrides})

    def __post_init__(self) -> None:
        if self.pages < 1 or self.rows < 1:
            raise ValueError(f"pages and rows must be >= 1, got {self.pages} and {self.rows}")


@dataclass(frozen=True)
class IngestReport:
    """The figures, as markdown and where their JSON was written."""

    results: dict
    markdown: str
    json_path: Path


def _sentences(limit: int) -> list[str]:
    from rag.load import load_folder
    from rag.text import sentence_spans

    out = []
    for doc in load_folder(SEEDS).documents:
        out.extend(doc.text[s:e] for s, e in sentence_spans(doc.text) if 12 <= e - s <= 28)
    return out[:limit]


def scanned_pages(pages: int, lines_per_page: int = 20) -> tuple[bytes, str]:
    """Return an image-only PDF of `pages` A4-like pages of seed sentences, and the text drawn on them."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(FONT), 30)
    lines = _sentences(pages * lines_per_page)
    images = []
    for p in range(pages):
        image = Image.new("RGB", (1240, 1754), "white")
        draw = ImageDraw.Draw(image)
        for k, line in enumerate(lines[p * lines_per_page:(p + 1) * lines_per_page]):
            draw.text((80, 100 + k * 78), line, fill="black", font=font)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buffer.getvalue(), "".join(lines)


_HEADER = ["区县", "年份", "地区生产总值（亿元）", "常住人口（万人）", "工业增加值（亿元）", "备注"]
_DISTRICTS = ["渝中区", "江北区", "南岸区", "沙坪坝区", "九龙坡区", "渝北区", "巴南区", "北碚区"]


def _row(r: int) -> list:
    return [f"{_DISTRICTS[r % 8]}{r // 8 + 1}号片区", 2000 + r % 26, round(100 + r * 1.37, 2),
            round(20 + r * 0.11, 1), round(30 + r * 0.53, 2), "样例数据"]


def table_pdf(rows: int, per_page: int = 30) -> bytes:
    """Return a PDF of the spreadsheet's `rows` as ruled tables, `per_page` rows and the header on each page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    xs, h = [40, 130, 170, 270, 370, 470, 540], 22
    for first in range(0, rows, per_page):
        pdf.setFont("STSong-Light", 9)
        lines = [_HEADER] + [[str(v) for v in _row(r)] for r in range(first, min(first + per_page, rows))]
        top = 800
        for k, line in enumerate(lines):
            for c, value in enumerate(line):
                pdf.drawString(xs[c] + 3, top - (k + 1) * h + 7, value)
        for k in range(len(lines) + 1):
            pdf.line(xs[0], top - k * h, xs[-1], top - k * h)
        for x in xs:
            pdf.line(x, top, x, top - len(lines) * h)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def spreadsheet(rows: int) -> bytes:
    """Return an .xlsx of `rows` generated rows (district, year, four figures)."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "统计"
    sheet.append(_HEADER)
    for r in range(rows):
        sheet.append(_row(r))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def folder_conversion(docs: Path, cache_dir: Path, changed: Path) -> dict:
    """Return the conversion seconds of a folder's first build, and of a rebuild after `changed` was edited."""
    from rag.convert.cache import ConversionCache
    from rag.load import load_folder

    cache = ConversionCache(cache_dir)
    began = time.perf_counter()
    first = load_folder(docs, cache)
    first_s = time.perf_counter() - began
    changed.write_bytes(changed.read_bytes() + "\n".encode())  # an edit: new bytes, same kind of file
    began = time.perf_counter()
    second = load_folder(docs, cache)
    rebuild_s = time.perf_counter() - began
    return {"files": len(first.documents) + len(first.skipped), "converted_first": len(first.converted),
            "converted_rebuild": len(second.converted), "first_s": round(first_s, 2), "rebuild_s": round(rebuild_s, 2),
            "rebuild_share": round(rebuild_s / first_s, 3) if first_s else 0.0}


def run(config: IngestConfig, progress: Callable[[str], None] | None = None) -> IngestReport:
    """Measure OCR and table ingestion; write the JSON and markdown into `config.out_dir` (else RAG_HOME/reports/bench)."""
    from rag.convert import ocr
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.index import build_index
    from rag.kb import prepare_upload
    from rag.text import squash

    say = progress or (lambda message: None)
    results: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                     "config": {"pages": config.pages, "rows": config.rows, "quick": config.quick}, "notes": []}
    if FONT.exists() and ocr.available():
        data, truth = scanned_pages(config.pages)
        say(f"OCR of {config.pages} scanned pages")
        ocr.available()  # the models load once, outside the timing
        began = time.perf_counter()
        upload = prepare_upload("scan.pdf", data)
        seconds = time.perf_counter() - began
        agreement = difflib.SequenceMatcher(None, squash(truth), squash(upload.data.decode("utf-8")),
                                            autojunk=False).ratio()
        results["ocr"] = {"pages": config.pages, "seconds": round(seconds, 2),
                          "seconds_per_page": round(seconds / config.pages, 2), "agreement": round(agreement, 4)}
    else:
        results["notes"].append("OCR skipped: needs fonts-noto-cjk and the [ocr] extra")
    say(f"converting and indexing an .xlsx of {config.rows} rows")
    data = spreadsheet(config.rows)
    began = time.perf_counter()
    upload = prepare_upload("stats.xlsx", data)
    converted = time.perf_counter() - began
    embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        (docs / upload.name).write_bytes(upload.data)
        (docs / "stats.meta.json").write_bytes(upload.meta)
        began = time.perf_counter()
        report = build_index(docs, Path(tmp) / "index", embedder)
        indexed = time.perf_counter() - began
    results["tables"] = {"rows": config.rows, "chunks": report.chunks, "convert_s": round(converted, 2),
                         "index_s": round(indexed, 2), "rows_per_s": round(config.rows / (converted + indexed), 1),
                         "convert_rows_per_s": round(config.rows / converted, 1)}
    try:
        data = table_pdf(config.rows)
    except ImportError:
        results["notes"].append("PDF tables skipped: needs reportlab (the [test] extra) to draw the PDF")
    else:
        say(f"recovering {config.rows} table rows from a PDF")
        began = time.perf_counter()
        upload = prepare_upload("stats.pdf", data)
        seconds = time.perf_counter() - began
        text = upload.data.decode("utf-8")
        found = sum(1 for r in range(config.rows) if f"区县：{_row(r)[0]}；" in text)
        pages = -(-config.rows // 30)
        results["pdf_tables"] = {"rows": config.rows, "pages": pages, "rows_found": found,
                                 "seconds": round(seconds, 2), "rows_per_s": round(config.rows / seconds, 1),
                                 "seconds_per_page": round(seconds / pages, 3)}
    say("converting a folder, then again after one file changed")
    with tempfile.TemporaryDirectory() as tmp:
        docs = Path(tmp) / "docs"
        docs.mkdir()
        (docs / "stats.xlsx").write_bytes(spreadsheet(config.rows))
        if "ocr" in results:
            (docs / "scan.pdf").write_bytes(scanned_pages(config.pages)[0])
        try:
            (docs / "tables.pdf").write_bytes(table_pdf(config.rows))
        except ImportError:
            pass
        changed = docs / "notes.csv"
        changed.write_text("区县,说明\n渝中区,测试\n", encoding="utf-8")
        results["folder"] = folder_conversion(docs, Path(tmp) / "converted", changed)
    markdown = format_markdown(results)
    out = out_folder(config.out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if config.quick else "")
    path = out / f"ingest-{stamp}.json"
    path.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    if not config.quick:
        (out / "ingest-latest.md").write_text(markdown, encoding="utf-8")
    return IngestReport(results, markdown, path)


def format_markdown(results: dict) -> str:
    """Return the figures as markdown tables."""
    lines = [f"Ingest benchmark, {results['when']}" + (" (quick run)" if results["config"]["quick"] else ""), ""]
    if "ocr" in results:
        o = results["ocr"]
        lines += ["| scanned pages | seconds | s per page | character agreement |", "|---|---|---|---|",
                  f"| {o['pages']} | {o['seconds']} | {o['seconds_per_page']} | {o['agreement']:.3f} |", ""]
    t = results["tables"]
    lines += ["| table rows | passages | convert s | index s (embed + BM25) | rows indexed/s | rows converted/s |",
              "|---|---|---|---|---|---|",
              f"| {t['rows']} | {t['chunks']} | {t['convert_s']} | {t['index_s']} | {t['rows_per_s']} | "
              f"{t['convert_rows_per_s']} |", ""]
    if "pdf_tables" in results:
        p = results["pdf_tables"]
        lines += ["| PDF table rows | pages | rows recovered | convert s | PDF rows converted/s | s per page |",
                  "|---|---|---|---|---|---|",
                  f"| {p['rows']} | {p['pages']} | {p['rows_found']} | {p['seconds']} | {p['rows_per_s']} | "
                  f"{p['seconds_per_page']} |", ""]
    if "folder" in results:
        f = results["folder"]
        lines += ["| folder files | converted first | first build convert s | converted after one edit | rebuild convert s "
                  "| rebuild share |", "|---|---|---|---|---|---|",
                  f"| {f['files']} | {f['converted_first']} | {f['first_s']} | {f['converted_rebuild']} | {f['rebuild_s']} | "
                  f"{f['rebuild_share']:.1%} |", ""]
    lines += [f"- {note}" for note in results["notes"]]
    return "\n".join(lines).rstrip() + "\n"
