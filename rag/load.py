"""Read a folder of documents into `Document`s: text files decoded (Chinese encodings), others through `rag.convert`."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.clean import clean, running_lines
from rag.text import cjk_ratio
from rag.types import Document, Region

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
# A converted file's pages, tables and metadata live beside its text: report.txt + report.meta.json.
META_SUFFIX = ".meta.json"
_REGION_KINDS = ("page", "table", "row", "ocr")
_DATE = re.compile(r"(20\d{2}|19\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_ISO_DATE = re.compile(r"(20\d{2}|19\d{2})[-/.](\d{1,2})[-/.](\d{1,2})")
# What stands before a publication date in a byline: 发布时间：2026-01-10, 来源：重庆日报 2026年1月10日.
_BYLINE_LABEL = re.compile(r"(发布|发表|刊发|更新|出版|印发)?(时间|日期)\s*[:：]|来源\s*[:：]|作者\s*[:：]|记者")
_CLAUSE = re.compile(r"[，,。；;！？!?]")
HEADER_LINES = 8  # title, subtitle, dateline, byline: the header of an article
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TERMINAL = "。！？!?；;：:，,、"


class DecodeError(ValueError):
    """A file's bytes are not text in any supported encoding."""


@dataclass(frozen=True)
class LoadResult:
    """Documents read from a folder, and the files skipped with the reason."""

    documents: tuple[Document, ...]
    skipped: tuple[tuple[str, str], ...]  # (file, "reason: detail"), the reason one of rag.convert.limits' kinds
    converted: tuple[str, ...] = ()  # files converted by this load (not taken from the conversion cache)


def decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding) for bytes in UTF-8, UTF-16, GB18030 or Big5; raise DecodeError."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if _looks_utf16(data):
        for enc in ("utf-16-le", "utf-16-be"):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            if _plausible(text):
                return text, enc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not _plausible(text):
            raise DecodeError("binary content (control characters)")
        return text, "utf-8"
    # GB18030 decodes almost any byte string, Big5 many: decode with each and keep the one
    # whose result reads as Chinese text (common characters, no control or private-use noise).
    candidates = []
    for enc in ("gb18030", "big5"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        if _plausible(text):
            candidates.append((_chinese_score(text), enc, text))
    if not candidates:
        raise DecodeError("not UTF-8, UTF-16, GB18030 or Big5 text")
    _, enc, text = max(candidates)
    return text, enc


def text_fingerprint(data: bytes) -> str | None:
    """Return a hash of the text `data` holds, the same whatever its encoding, BOM or line ends; None if not text."""
    try:
        text, _ = decode(data)
    except DecodeError:
        return None
    text = unicodedata.normalize("NFC", text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.strip().split("\n"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _looks_utf16(data: bytes) -> bool:
    sample = data[:4000]
    return len(sample) >= 4 and sample.count(0) >= len(sample) // 8


def _plausible(text: str) -> bool:
    if not text.strip():
        return True
    bad = sum(1 for c in text if (ord(c) < 32 and c not in "\r\n\t\f") or 0xE000 <= ord(c) <= 0xF8FF)
    return bad <= len(text) * 0.001


def _chinese_score(text: str) -> float:
    """Share of characters that are common Chinese characters or ASCII/CJK punctuation."""
    from rag.text import to_simplified

    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    common = sum(1 for c in chars if c.isascii() or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
                 or _is_common_hanzi(c, to_simplified))
    return common / len(chars)


def _is_common_hanzi(ch: str, to_simplified) -> bool:
    # GB2312 covers the ~6,700 everyday Simplified characters; a Big5 text read as GB18030
    # yields rare characters, and a real Traditional text maps into GB2312 after t2s.
    if not "\u4e00" <= ch <= "\u9fff":
        return False
    for candidate in (ch, to_simplified(ch)):
        try:
            candidate.encode("gb2312")
            return True
        except UnicodeEncodeError:
            continue
    return False


def meta_path(path: Path) -> Path:
    """Return the metadata file that belongs beside document `path` (report.txt → report.meta.json)."""
    return path.with_name(path.stem + META_SUFFIX)


def file_digest(path: Path) -> str:
    """Return the hash a document is indexed under: its bytes, and its metadata file's when it has one."""
    digest = hashlib.sha256(path.read_bytes())
    meta = meta_path(path)
    if meta.is_file():
        digest.update(b"\0meta\0" + meta.read_bytes())
    return digest.hexdigest()


def read_meta(path: Path, size: int) -> dict:
    """Return the metadata stored beside `path` (title, date, source, regions); {} when absent or unusable.

    `size` is the length of the document's original text: regions outside it are dropped, so a
    metadata file that no longer fits its text cannot break citations.
    """
    meta = meta_path(path)
    if not meta.is_file():
        return {}
    try:
        raw = json.loads(meta.read_text(encoding="utf-8"))
        regions = []
        for item in raw.get("regions", []):
            kind, start, end, label, confidence = (list(item) + [None] * 5)[:5]
            if kind in _REGION_KINDS and type(start) is int and type(end) is int and 0 <= start < end <= size:
                regions.append(Region(kind, start, end, str(label or ""),
                                      float(confidence) if confidence is not None else None))
        return {"title": str(raw.get("title") or "").strip(), "date": raw.get("date") or None,
                "source": str(raw.get("source") or ""), "regions": tuple(regions),
                "notes": tuple(str(n) for n in raw.get("notes", []) if n)}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("ignored %s: %s", meta.name, exc)
        return {}


def load_file(path: Path, name: str | None = None) -> Document:
    """Return the `Document` for one text file (with its metadata file, if any); raise DecodeError when it is not text."""
    data = path.read_bytes()
    original, encoding = decode(data)
    original = original.replace("\r\n", "\n").replace("\r", "\n")
    return make_document(original, name or path.name, read_meta(path, len(original)), file_digest(path), encoding)


def make_document(original: str, name: str, meta: dict, sha256: str, encoding: str = "utf-8") -> Document:
    """Return the `Document` of a file's text (`meta`: title, date, source, regions, notes), cleaned and dated."""
    regions = meta.get("regions", ())
    pages = [(r.start, r.end) for r in regions if r.kind == "page"]
    text, offsets = clean(original, drop=running_lines(original, pages))
    date = meta.get("date")
    stem = name.rsplit(".", 1)[0] if "." in Path(name).name else name
    return Document(
        id=stem,
        file=name,
        title=meta.get("title") or find_title(text) or Path(name).stem,
        date=date if isinstance(date, str) and _DAY.fullmatch(date) else find_date(text),
        sha256=sha256,
        encoding=encoding,
        original=original,
        text=text,
        offsets=tuple(offsets),
        regions=regions,
        source=meta.get("source", ""),
        notes=meta.get("notes", ()),
    )


def document_files(folder: Path) -> dict[str, Path]:
    """Return every file of `folder` and its subfolders by relative name ("年报/2025.pdf"), sorted.

    Hidden files and folders (uploads in progress, deleted leftovers) and the `.meta.json` beside a
    converted upload are not documents.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    files = {}
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.name.endswith(META_SUFFIX):
            continue
        if path.is_file():
            files[relative.as_posix()] = path
    return dict(sorted(files.items()))


def load_folder(folder: Path, cache=None, progress=None) -> LoadResult:
    """Return every document of `folder` (recursively), converted through `rag.convert`; other files skipped, each with why.

    `cache` (a `ConversionCache`) keeps conversions between builds; `progress(stage, done, total)`
    hears "file i of n" and OCR pages.
    """
    from rag.convert import limits
    from rag.convert.registry import SUPPORTED_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"documents folder {folder} does not exist; create it and put documents in it")
    files = document_files(folder)
    if not files:
        raise FileNotFoundError(
            f"no files in {folder}; add documents there (or pass --docs DIR) and run `rag index` again"
        )
    documents, skipped, converted, keys = [], [], [], set()
    by_id: dict[str, str] = {}  # document id -> file that has it
    by_text: dict[str, str] = {}  # digest of the cleaned text -> file that has it
    for number, (name, path) in enumerate(files.items(), 1):
        suffix = path.suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            skipped.append((name, f"{limits.UNSUPPORTED}: {suffix or name}"))
            continue
        try:
            size = path.stat().st_size
            if size > limits.MAX_FILE_BYTES:  # a 30 MB .txt once took 2.5 GB and minutes to index
                skipped.append((name, f"{limits.TOO_LARGE}: {size / 1024 / 1024:.1f} MB, over the "
                                      f"{limits.MAX_FILE_BYTES // 1024 // 1024} MB limit"))
                continue
            if suffix in TEXT_SUFFIXES:
                doc = load_file(path, name)
            else:
                doc, fresh = _converted(path, name, cache, progress, (number, len(files)), keys, converted)
                if fresh:
                    converted.append(name)
        except (DecodeError, OSError) as exc:
            log.warning("skipped %s: %s", name, exc)
            skipped.append((name, f"{limits.DAMAGED}: {exc}"))
            continue
        except limits.ConversionError as exc:
            log.warning("skipped %s: %s", name, exc)
            skipped.append((name, f"{exc.kind}: {exc}"))
            continue
        if not doc.text.strip():
            log.warning("skipped %s: no text", name)
            skipped.append((name, f"{limits.EMPTY}: no text"))
            continue
        # A document is named by its file's stem and its chunks by its content: a second "报告.md"
        # beside "报告.txt", or a copy of a file, would give two documents one id and break the index.
        digest = hashlib.sha256(doc.text.encode("utf-8")).hexdigest()
        if doc.id in by_id or digest in by_text:
            first = by_id.get(doc.id) or by_text[digest]
            reason = (f"{limits.DUPLICATE}: 与 {first} 同名（扩展名不同），改名后才能一起检索 / same name as {first}, "
                      "rename one to index both" if doc.id in by_id
                      else f"{limits.DUPLICATE}: 与 {first} 内容相同 / same text as {first}")
            log.warning("skipped %s: %s", name, reason)
            skipped.append((name, reason))
            continue
        by_id[doc.id], by_text[digest] = name, name
        documents.append(doc)
    if cache is not None:
        cache.prune(keys)
    if not documents:
        raise FileNotFoundError(f"none of the {len(files)} files in {folder} could be indexed: "
                                + "; ".join(f"{n} ({r})" for n, r in skipped[:10]))
    return LoadResult(tuple(documents), tuple(skipped), tuple(converted))


def _converted(path: Path, name: str, cache, progress, place: tuple[int, int], keys: set[str],
               converted: list[str]) -> tuple[Document, bool]:
    """Return the document of a non-text file and whether it was converted now; raise ConversionError.

    Its cache key goes into `keys`, refused or not: a refusal is kept too, so a damaged file is not
    read again at every build; a file converted now (even if refused) goes into `converted`.
    """
    from rag.convert.cache import ConversionCache
    from rag.convert.limits import ConversionError
    from rag.convert.registry import CONVERTER_VERSION, convert

    data = path.read_bytes()
    key = ConversionCache.key(data, CONVERTER_VERSION)
    keys.add(key)
    result = cache.get(key) if cache is not None else None
    fresh = result is None
    if fresh:
        if progress:
            progress(f"convert {name}", place[0] - 1, place[1])

        def pages(stage: str, done: int, total: int) -> None:
            if progress:
                progress(f"{name}: {stage}", done, total)

        try:
            result = convert(data, name, pages)
        except ConversionError as exc:
            result = exc
        if cache is not None:
            cache.put(key, result)
    if isinstance(result, ConversionError):
        if fresh:
            converted.append(name)
        raise result
    meta = {"title": result.title, "date": result.date, "source": name, "regions": result.regions,
            "notes": result.notes}
    return make_document(result.text, name, meta, file_digest(path)), fresh


def find_title(text: str) -> str:
    """Return the first heading-like line of cleaned `text` (short, no sentence punctuation)."""
    for line in text.split("\n"):
        line = line.strip()
        if not line or _DATE.search(line) or len(line) > 60:
            continue
        if cjk_ratio(line) >= 0.5 and line[-1] not in _TERMINAL:
            return line
    return ""


def find_date(text: str) -> str | None:
    """Return the publication date the text states in its header or byline, as YYYY-MM-DD, or None.

    Only the first lines count, and only a date standing on a line of its own ("2026年1月10日 中国·重庆")
    or after a label (发布时间：, 日期：, 来源：…). A date inside a sentence is an event's date ("6月1日，
    条例正式施行", "学院于2025年9月8日成立"), never the article's: then there is no date.
    """
    from rag.text import normalize

    lines = [line.strip() for line in normalize(text).split("\n") if line.strip()][:HEADER_LINES]
    for line in lines:
        for pattern in (_DATE, _ISO_DATE):
            match = pattern.search(line)
            if not match:
                continue
            rest = (line[: match.start()] + line[match.end() :]).strip()
            labelled = _BYLINE_LABEL.search(line[: match.start()])
            if labelled or (len(rest) <= 20 and not _CLAUSE.search(rest)):
                year, month, day = (int(g) for g in match.groups())
                if 1 <= month <= 12 and 1 <= day <= 31:
                    return f"{year:04d}-{month:02d}-{day:02d}"
    return None
