"""The knowledge base behind the chat page: list, add, delete and re-index documents.

One `KnowledgeBase` serves every session of a process. It holds the loaded index; a change (upload,
delete, rebuild) builds a new index beside the live one and then swaps the reference, so questions
asked meanwhile finish on the old index. Uploads are validated and converted to text *before*
anything is written: a refused file changes nothing. PDF, Word and HTML files are stored as `.txt`
(the loader reads `.txt` and `.md`), so the documents folder stays plain text.

Messages of `UploadError` are shown on the (Chinese) page, so they are written in Chinese.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import re
import threading
import unicodedata
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.clean import clean
from rag.embed import DEFAULT_MODEL, Embedder, make_embedder
from rag.index import BuildReport, Index, IndexProblem, build_index, current_build, load_index, staleness
from rag.load import TEXT_SUFFIXES, DecodeError, decode, text_fingerprint

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# What a conversion may produce, checked before anything is written. A 2.6 MB .docx whose XML
# expanded to 36 MB once became a 34.5 MB .txt (~70 s, 2.6 GB of memory). Measured here with
# python-docx: 8.4 MB of document XML (20,000 paragraphs) converts in ~4.6 s using ~100 MB, so
# 20 MB unpacked bounds a conversion to ~10-15 s; legitimate .docx files unpack to 3-10x their size.
MAX_CONVERTED_BYTES = MAX_UPLOAD_BYTES  # the stored text: no more than a text upload may hold
MAX_PDF_PAGES = 500  # pypdf reads 4-50 ms per page
MAX_DOCX_PARAGRAPHS = 30_000
MAX_ZIP_UNCOMPRESSED = 20 * 1024 * 1024
MAX_ZIP_RATIO = 100  # unpacked size over file size; zip bombs reach ~1000
_MB = 1024 * 1024
CONVERTED_SUFFIXES = (".pdf", ".docx", ".html", ".htm")
UPLOAD_SUFFIXES = TEXT_SUFFIXES + CONVERTED_SUFFIXES
MAX_NAME_BYTES = 200
_FORBIDDEN_NAME_CHARS = set('<>:"|?*\\/')

Progress = Callable[[str, int, int], None]


class UploadError(ValueError):
    """An uploaded file was refused; the message says why and what to do."""


@dataclass(frozen=True)
class Upload:
    """A validated upload, converted if needed: the bytes to store under `name`."""

    source: str
    name: str
    data: bytes
    converted: bool


@dataclass(frozen=True)
class DocumentRow:
    """One line of the document list."""

    title: str
    file: str
    date: str | None
    chunks: int
    added: str
    note: str = ""


# --- validation and conversion -----------------------------------------------------------------


def safe_name(raw: str) -> str:
    """Return the bare, NFKC-normalized file name of an upload; raise UploadError if it is unsafe."""
    name = unicodedata.normalize("NFKC", str(raw or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()  # browsers may send a path; keep the last part
    if not name or name.startswith("."):
        raise UploadError(f"文件名“{name}”无效：不能为空或以点开头")
    if ".." in name:
        raise UploadError(f"文件名“{name}”无效：不能包含“..”")
    if any(ord(c) < 32 or ord(c) == 127 or c in _FORBIDDEN_NAME_CHARS for c in name):
        raise UploadError(f"文件名“{name!r}”含有不允许的字符")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadError(f"文件名太长（上限 {MAX_NAME_BYTES} 字节），请改短后再上传")
    path = Path(name)
    if path.suffix.lower() not in UPLOAD_SUFFIXES or not path.stem.strip():
        allowed = "、".join(UPLOAD_SUFFIXES)
        raise UploadError(f"不支持的文件类型“{path.suffix or name}”：只能上传 {allowed}")
    return name


def prepare_upload(filename: str, data: bytes) -> Upload:
    """Return the upload validated and converted to storable text; raise UploadError otherwise."""
    name = safe_name(filename)
    if not data:
        raise UploadError(f"{name} 是空文件")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(
            f"{name} 有 {len(data) / 1024 / 1024:.1f} MB，超过了 {MAX_UPLOAD_BYTES // 1024 // 1024} MB 的上限"
        )
    suffix = Path(name).suffix.lower()
    if suffix in TEXT_SUFFIXES:
        try:
            text, _ = decode(data)
        except DecodeError as exc:
            raise UploadError(f"{name} 不是可识别的文本（支持 UTF-8、UTF-16、GB18030、Big5 编码的文字）") from exc
        stored, payload, converted = Path(name).stem + suffix, data, False
    else:
        text = _CONVERTERS[suffix](data, name)
        stored, payload, converted = Path(name).stem + ".txt", text.encode("utf-8"), True
        if len(payload) > MAX_CONVERTED_BYTES:
            raise _too_much_text(name, len(payload))
    cleaned, _ = clean(text.replace("\r\n", "\n").replace("\r", "\n"))
    if not cleaned.strip():
        raise UploadError(f"{name} 中没有可检索的文字")
    return Upload(source=name, name=stored, data=payload, converted=converted)


def pdf_text(data: bytes, name: str = "PDF") -> str:
    """Return the text of a PDF, pages separated by blank lines; raise UploadError if unreadable."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UploadError(f"{name} 已加密，请先解除密码保护")
        if len(reader.pages) > MAX_PDF_PAGES:
            raise UploadError(f"{name} 有 {len(reader.pages)} 页，超过了 {MAX_PDF_PAGES} 页的上限：请拆分成几个文件再上传")
        pages, size = [], 0
        for page in reader.pages:  # stops as soon as the text is too long, not after reading every page
            pages.append((page.extract_text() or "").strip())
            size += len(pages[-1].encode("utf-8")) + 2
            if size > MAX_CONVERTED_BYTES:
                raise _too_much_text(name, size, partial=True)
    except UploadError:
        raise
    except Exception as exc:  # a parser fed untrusted bytes can fail in many ways; all mean "unreadable"
        raise UploadError(f"无法读取 {name}：不是有效的 PDF（{type(exc).__name__}）") from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise UploadError(f"{name} 中没有可提取的文字（可能是扫描件，需要先做 OCR）")
    return text


def docx_text(data: bytes, name: str = "Word 文档") -> str:
    """Return the paragraphs and table rows of a .docx in document order; raise UploadError if unreadable."""
    import docx
    from docx.table import Table

    check_docx_zip(data, name)
    try:
        document = docx.Document(io.BytesIO(data))
        lines = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = list(dict.fromkeys(c.text.strip() for c in row.cells if c.text.strip()))
                    if cells:
                        lines.append(" | ".join(cells))
            elif block.text.strip():
                lines.append(block.text.strip())
        title = (document.core_properties.title or "").strip()
    except Exception as exc:  # see pdf_text
        raise UploadError(f"无法读取 {name}：不是有效的 .docx 文件（{type(exc).__name__}）") from exc
    return _with_title(title, "\n\n".join(lines))


def check_docx_zip(data: bytes, name: str = "Word 文档") -> None:
    """Refuse a .docx whose zip directory declares too much content, before any of it is unpacked or parsed.

    The declared sizes are a hard bound: Python's zipfile never returns more than an entry declares
    (a lie ends in a CRC error), so checking the directory bounds what python-docx can read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(entry.file_size for entry in archive.infolist())
            if total > MAX_ZIP_UNCOMPRESSED:
                raise UploadError(f"{name} 解压后有 {total / _MB:.1f} MB，超过了 {MAX_ZIP_UNCOMPRESSED // _MB} MB 的上限："
                                  "文档内容过多，请拆分后再上传")
            if total > MAX_ZIP_RATIO * len(data):
                raise UploadError(f"{name} 解压后是原文件的 {total / len(data):.0f} 倍（上限 {MAX_ZIP_RATIO} 倍）："
                                  "压缩比异常，疑似压缩炸弹，已拒绝")
            body = archive.read("word/document.xml")
    except UploadError:
        raise
    except Exception as exc:  # not a zip, or no document part: python-docx would fail the same way
        raise UploadError(f"无法读取 {name}：不是有效的 .docx 文件（{type(exc).__name__}）") from exc
    paragraphs = body.count(b"<w:p>") + body.count(b"<w:p ") + body.count(b"<w:p/>")
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise UploadError(f"{name} 有 {paragraphs} 个段落，超过了 {MAX_DOCX_PARAGRAPHS} 个的上限：请拆分后再上传")


def _too_much_text(name: str, size: int, partial: bool = False) -> UploadError:
    amount = f"超过 {size / _MB:.1f} MB" if partial else f"有 {size / _MB:.1f} MB"
    return UploadError(f"{name} 转换出的文字{amount}，超过了 {MAX_CONVERTED_BYTES // _MB} MB 的上限：请拆分后再上传")


def html_text(data: bytes, name: str = "网页") -> str:
    """Return the main text of an HTML page (scripts and markup dropped); raise UploadError if unreadable."""
    import html as htmllib

    import nh3
    import trafilatura

    try:
        page, _ = decode(data)
    except DecodeError as exc:
        raise UploadError(f"{name} 不是可识别的文本：{exc}") from exc
    try:
        page = _plain_html(page)
        text = trafilatura.extract(page, include_comments=False, include_tables=True)
        text = text or trafilatura.extract(page, include_comments=False, include_tables=True, favor_recall=True)
        meta = trafilatura.extract_metadata(page)
    except Exception as exc:  # see pdf_text
        raise UploadError(f"无法解析 {name}（{type(exc).__name__}）") from exc
    if not text:
        # A page too small for boilerplate removal: keep all visible text (nh3 drops script/style bodies).
        text = htmllib.unescape(nh3.clean(page, tags=set()))
    return _with_title(getattr(meta, "title", None) or "", text.strip())


# Inline elements: trafilatura puts each on a line of its own ("预计达到\n86吨\n。"), which splits
# sentences, so they are unwrapped into their text first. Dropped elements go with their content:
# a <script> inside <h1> must not reach the title.
_INLINE_TAGS = ("a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i",
                "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time",
                "tt", "u", "var")
_DROPPED_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "canvas")


def _plain_html(page: str) -> str:
    """Return the page without scripts, styles and comments, its inline elements replaced by their text."""
    import lxml.etree as etree
    import lxml.html

    page = re.sub(r"^\s*<\?xml[^>]*\?>", "", page)  # lxml refuses a str that declares its encoding
    if not page.strip():
        return page
    tree = lxml.html.document_fromstring(page)
    etree.strip_elements(tree, *_DROPPED_TAGS, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    etree.strip_tags(tree, *_INLINE_TAGS)
    return lxml.html.tostring(tree, encoding="unicode")


def _with_title(title: str, text: str) -> str:
    # The loader takes the first heading-like line as the title; put the file's own title there.
    title = " ".join(title.split())
    if title and not text.startswith(title):
        return f"{title}\n\n{text}"
    return text


_CONVERTERS: dict[str, Callable[[bytes, str], str]] = {
    ".pdf": pdf_text,
    ".docx": docx_text,
    ".html": html_text,
    ".htm": html_text,
}


# --- the knowledge base ------------------------------------------------------------------------


class KnowledgeBase:
    """A documents folder and its index, shared by all sessions. Cheap to create; `load` reads the index."""

    def __init__(self, docs_dir: Path, index_dir: Path, embedder: Embedder | None = None) -> None:
        self.docs_dir = Path(docs_dir)
        self.index_dir = Path(index_dir)
        self._embedder = embedder
        self._index: Index | None = None
        # Writers (upload, delete, rebuild) take turns. Readers need no lock: they take the
        # `_index` reference once per question, and rebinding an attribute is atomic.
        self._change = threading.Lock()
        self.updater: threading.Thread | None = None  # the background update started by `update_in_background`

    @property
    def index(self) -> Index:
        """Return the live index; raise IndexProblem before `load` or `rebuild` succeeded."""
        index = self._index
        if index is None:
            raise IndexProblem(f"no index loaded from {self.index_dir}")
        return index

    @property
    def exists(self) -> bool:
        """True when the index folder has a live build (it may still be stale or broken)."""
        return (self.index_dir / "CURRENT").exists()

    def load(self) -> list[str]:
        """Load the live index; return why it is stale (empty when current). Raise IndexProblem if unusable."""
        index = load_index(self.index_dir, self._embedder, long_lived=True)
        self._embedder = index.embedder
        self._index = index
        return staleness(index.manifest, self.docs_dir)

    def warm(self) -> None:
        """Load what the first question would otherwise wait for: the query encoder and the tokenizer."""
        from rag.retrieve import Retriever

        Retriever(self.index).run("重庆人工智能")

    def rebuild(self, progress: Progress | None = None) -> BuildReport:
        """Index the documents folder again (only new text is embedded) and swap the new index in."""
        with self._change:
            return self._rebuild(progress)

    def update_in_background(self, done: Callable[[BuildReport | None, Exception | None], None] | None = None,
                             ) -> threading.Thread:
        """Start rebuilding in a daemon thread while the loaded index keeps answering; return the thread.

        The new index is swapped in when its build succeeds; if it fails, the loaded one stays. `done`
        gets (report, None) or (None, error). A kill meanwhile leaves the previous build live (atomic builds).
        """
        def run() -> None:
            try:
                report = self.rebuild()
            except Exception as exc:  # keep serving the index that is loaded
                log.warning("updating the index in the background failed: %s", exc)
                if done:
                    done(None, exc)
            else:
                if done:
                    done(report, None)

        self.updater = threading.Thread(target=run, name="index-update", daemon=True)
        self.updater.start()
        return self.updater

    def _rebuild(self, progress: Progress | None) -> BuildReport:
        if self._embedder is None:
            self._embedder = make_embedder(DEFAULT_MODEL, long_lived=True)
        report = build_index(self.docs_dir, self.index_dir, self._embedder, progress=progress)
        if progress:
            progress("load", 0, 1)
        self._index = load_index(self.index_dir, self._embedder)
        return report

    def documents(self) -> list[DocumentRow]:
        """Return the indexed documents (and files the index skipped), sorted by file name."""
        index = self.index
        chunks: dict[str, int] = {}
        for chunk in index.chunks:
            chunks[chunk.doc_id] = chunks.get(chunk.doc_id, 0) + 1
        rows = [
            DocumentRow(doc.title, doc.file, doc.date, chunks.get(doc.id, 0), self._added(doc.file))
            for doc in index.documents.values()
        ]
        for file, reason in index.manifest.get("skipped", {}).items():
            rows.append(DocumentRow(file, file, None, 0, self._added(file), note=f"未索引：{reason}"))
        return sorted(rows, key=lambda r: r.file)

    def _added(self, file: str) -> str:
        try:
            stamp = (self.docs_dir / file).stat().st_mtime
        except OSError:
            return ""
        return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

    def add(self, filename: str, data: bytes, progress: Progress | None = None) -> tuple[Upload, BuildReport]:
        """Store one upload and re-index; return it and the build report. On any failure nothing changes."""
        upload = prepare_upload(filename, data)
        with self._change:
            target = self._inside(upload.name)
            self._check_new(upload)
            tmp = self.docs_dir / f".upload-{uuid.uuid4().hex[:8]}.part"  # a suffix the loader ignores
            tmp.write_bytes(upload.data)
            try:
                os.replace(tmp, target)
                report = self._rebuild(progress)
            except BaseException:
                tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                raise
        return upload, report

    def _check_new(self, upload: Upload) -> None:
        stem = Path(upload.name).stem
        # Text is compared, not bytes: the same article re-saved as GB18030, with a BOM or CRLF is no new document.
        digest = text_fingerprint(upload.data) or hashlib.sha256(upload.data).hexdigest()
        for path in self._files():
            if path.stem == stem:
                raise UploadError(f"已有同名文档 {path.name}：请先删除它，或把文件改名后再上传")
            data = path.read_bytes()
            if digest in (text_fingerprint(data), hashlib.sha256(data).hexdigest()):
                raise UploadError(f"{upload.source} 与已有文档 {path.name} 内容相同")

    def delete(self, file: str, progress: Progress | None = None) -> BuildReport:
        """Remove one document file and re-index; return the build report. On failure the file is restored."""
        with self._change:
            names = {p.name: p for p in self._files()}
            if file not in names:
                raise UploadError(f"知识库中没有文件“{file}”")
            if len(names) == 1:
                raise UploadError("这是最后一篇文档：知识库至少要保留一篇，请先上传新文档再删除它")
            path = names[file]
            held = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.deleted")  # ignored by the loader
            os.replace(path, held)
            try:
                report = self._rebuild(progress)
            except BaseException:
                os.replace(held, path)
                raise
            held.unlink(missing_ok=True)
            return report

    def _files(self) -> list[Path]:
        if not self.docs_dir.is_dir():
            return []
        return sorted(p for p in self.docs_dir.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)

    def adopt_newer_build(self) -> Index | None:
        """Load the build `CURRENT` names when another process made it; return it, or None when nothing
        changed, a change of this process is running, or the new build cannot be loaded (kept as is).

        Swapping is safe as in `rebuild`: questions under way finish on the index they took.
        """
        if not self._change.acquire(blocking=False):
            return None  # an upload, delete or rebuild of ours is switching builds right now
        try:
            loaded = self._index
            try:
                if loaded is not None and current_build(self.index_dir) == loaded.path:
                    return None
                index = load_index(self.index_dir, self._embedder)
            except IndexProblem as exc:
                log.warning("a newer index in %s cannot be loaded (%s); still serving the loaded one", self.index_dir, exc)
                return None
            self._embedder = index.embedder
            self._index = index
            return index
        finally:
            self._change.release()

    @property
    def changing(self) -> bool:
        """True while an upload, delete or rebuild (or the start-up's background update) is running."""
        return self._change.locked()

    def _inside(self, name: str) -> Path:
        """Return docs_dir/name, refusing any name that would resolve outside the folder."""
        self.docs_dir.mkdir(parents=True, exist_ok=True)
        root = self.docs_dir.resolve()
        target = (root / name).resolve()
        if target.parent != root:
            raise UploadError(f"文件名“{name}”无效")
        return target


def remove_deleted_leftovers(docs_dir: Path) -> list[Path]:
    """Remove documents a killed `delete` left hidden (`.name.<hex>.deleted`); return them.

    The delete had been asked for and the loader already ignores these files, so finishing it is
    right whether or not the killed rebuild got as far as the switch. Call it at start-up, before any
    delete of this process runs.
    """
    docs_dir = Path(docs_dir)
    removed = [p for p in docs_dir.iterdir() if p.is_file() and _deleted_leftover(p.name)] if docs_dir.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _deleted_leftover(name: str) -> bool:
    hidden, tag, suffix = (name.rsplit(".", 2) + ["", ""])[:3]  # `delete` names them .<name>.<8 hex>.deleted
    return (name.startswith(".") and len(hidden) > 1 and suffix == "deleted" and len(tag) == 8
            and all(c in "0123456789abcdef" for c in tag))
