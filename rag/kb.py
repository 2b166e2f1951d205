"""The knowledge base behind the chat page: list, add, delete and re-index documents.

One `KnowledgeBase` serves every session of a process. It holds the loaded index; a change (upload,
delete, rebuild) builds a new index beside the live one and then swaps the reference, so questions
asked meanwhile finish on the old index. Uploads are validated and converted to text *before*
anything is written: a refused file changes nothing. An upload is kept as it came (PDF, Word, Excel,
HTML, images) and its conversion goes to the index's conversion cache, where the build reads it as
it reads a folder's files: citations, 查看全文 and pages name the original. Documents uploaded before
(a `.txt` with its `.meta.json`) still load.

Messages of `UploadError` are shown on the (Chinese) page, so they are written in Chinese.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import threading
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rag.clean import clean
from rag.convert import limits
from rag.convert.limits import MAX_UPLOAD_BYTES, TOO_LARGE, ConversionError, megabytes
from rag.convert.cache import ConversionCache
from rag.convert.ocr import LOW_CONFIDENCE
from rag.convert.registry import CONVERTED_SUFFIXES, CONVERTER_VERSION, convert
from rag.convert.result import Converted
from rag.types import Document
from rag.embed import DEFAULT_MODEL, Embedder, make_embedder
from rag.gloss import glossary_for
from rag.index import BuildReport, Index, IndexProblem, build_index, current_build, load_index, staleness
from rag.load import TEXT_SUFFIXES, DecodeError, decode, document_files, meta_path, text_fingerprint

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = TEXT_SUFFIXES + CONVERTED_SUFFIXES
MAX_NAME_BYTES = 200
_FORBIDDEN_NAME_CHARS = set('<>:"|?*\\/')

Progress = Callable[[str, int, int], None]


UploadError = ConversionError  # an upload is refused for the reasons a conversion is, and for its name


@dataclass(frozen=True)
class Upload:
    """A validated upload: its bytes under `name`; `prepare_upload` gives a converted file's text, `add` the original."""

    source: str
    name: str
    data: bytes
    converted: bool
    meta: bytes | None = None  # the regions and metadata of a converted text (pages, tables), as .meta.json
    conversion: Converted | None = None  # what rag.convert made of the original, for the conversion cache


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
    # Format characters are invisible: U+202E (right-to-left override) could show "报告\u202Efdp.exe" as
    # "报告exe.pdf"; zero-width ones make two names look alike. They are dropped, so the name shows as it is.
    name = "".join(c for c in name if unicodedata.category(c) != "Cf")
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


def prepare_upload(filename: str, data: bytes, progress: Progress | None = None) -> Upload:
    """Return the upload validated and converted to storable text; raise UploadError otherwise.

    `progress(stage, done, total)` hears about long conversions (OCR, page by page).
    """
    name = safe_name(filename)
    if not data:
        raise UploadError(f"{name} 是空文件")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} 有 {megabytes(len(data))} MB，超过了 {MAX_UPLOAD_BYTES // 1024 // 1024} MB 的上限",
                          TOO_LARGE)
    suffix = Path(name).suffix.lower()
    meta = None
    if suffix in TEXT_SUFFIXES:
        try:
            text, _ = decode(data)
        except DecodeError as exc:
            raise UploadError(f"{name} 不是可识别的文本（支持 UTF-8、UTF-16、GB18030、Big5 编码的文字）") from exc
        stored, payload, converted = Path(name).stem + suffix, data, False
    else:
        result = convert(data, name, progress)
        text = result.text
        stored, payload, converted, meta = Path(name).stem + ".txt", text.encode("utf-8"), True, result.meta_json()
    cleaned, _ = clean(text.replace("\r\n", "\n").replace("\r", "\n"))
    if not cleaned.strip():
        raise UploadError(f"{name} 中没有可检索的文字")
    return Upload(source=name, name=stored, data=payload, converted=converted, meta=meta,
                  conversion=result if converted else None)


# A page whose text layer has fewer visible characters than this is a scan (or a picture) to read by OCR.

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
        self._index = _ready(load_index(self.index_dir, self._embedder))
        return report

    def documents(self) -> list[DocumentRow]:
        """Return the indexed documents (and files the index skipped), sorted by file name."""
        index = self.index
        chunks: dict[str, int] = {}
        for chunk in index.chunks:
            chunks[chunk.doc_id] = chunks.get(chunk.doc_id, 0) + 1
        rows = [
            DocumentRow(doc.title, doc.file, doc.date, chunks.get(doc.id, 0), self._added(doc.file), document_note(doc))
            for doc in index.documents.values()
        ]
        for file, reason in index.manifest.get("skipped", {}).items():
            rows.append(DocumentRow(file, file, None, 0, self._added(file), note=f"未索引：{skip_reason(reason)}"))
        return sorted(rows, key=lambda r: r.file)

    def _added(self, file: str) -> str:
        try:
            stamp = (self.docs_dir / file).stat().st_mtime
        except OSError:
            return ""
        return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")

    def add(self, filename: str, data: bytes, progress: Progress | None = None) -> tuple[Upload, BuildReport]:
        """Store one upload as it came and re-index; return it (as stored) and the build report.

        On any failure nothing changes.
        """
        upload = prepare_upload(filename, data, progress)
        text = upload.data
        if upload.conversion is not None:  # the original is kept, not its text
            upload = replace(upload, name=Path(upload.source).stem + Path(upload.source).suffix.lower(), data=data,
                             meta=None)
        with self._change:
            target = self._inside(upload.name)
            self._check_new(upload, text)
            if upload.conversion is not None:  # the build finds it in the cache: an OCR'd scan is read once
                ConversionCache(self.index_dir / "converted").put(ConversionCache.key(data, CONVERTER_VERSION),
                                                                   upload.conversion)
            skipped_before = set(self._index.manifest.get("skipped", {})) if self._index is not None else set()
            meta_target = meta_path(target)
            tag = uuid.uuid4().hex[:8]
            tmp = self.docs_dir / f".upload-{tag}.part"  # a suffix the loader ignores
            tmp.write_bytes(upload.data)
            meta_tmp = self.docs_dir / f".upload-{tag}.meta.part"
            try:
                # The metadata first: a text without its pages would be indexed without them.
                if upload.meta is not None:
                    meta_tmp.write_bytes(upload.meta)
                    os.replace(meta_tmp, meta_target)
                else:
                    meta_target.unlink(missing_ok=True)  # one left by an earlier file of this name
                os.replace(tmp, target)
                report = self._rebuild(progress)
                refused = dict(report.skipped).get(upload.name)
                # A document it duplicates sorts after it: the build kept the upload and dropped that one.
                displaced = [file for file, reason in report.skipped if file not in skipped_before
                             and reason.startswith(limits.DUPLICATE) and upload.name in reason]
            except BaseException:
                tmp.unlink(missing_ok=True)
                meta_tmp.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
                meta_target.unlink(missing_ok=True)
                raise
            if refused or displaced:
                # The same text as a document stored in another format, found only once both were converted:
                # take the upload out again, so an upload accepted is an upload indexed and none is displaced.
                target.unlink(missing_ok=True)
                self._rebuild(progress)
                why = skip_reason(refused) if refused else f"与已有文档 {displaced[0]} 内容相同"
                raise UploadError(f"{upload.source} 未加入知识库：{why}")
        return upload, report

    def _check_new(self, upload: Upload, text: bytes) -> None:
        stem = Path(upload.name).stem
        # Text is compared, not bytes: the same article re-saved as GB18030, with a BOM or CRLF is no new document.
        digests = {text_fingerprint(text) or hashlib.sha256(text).hexdigest(), hashlib.sha256(upload.data).hexdigest()}
        for path in self._files():
            if path.stem == stem:
                raise UploadError(f"已有同名文档 {path.name}：请先删除它，或把文件改名后再上传")
            data = path.read_bytes()
            if digests & {text_fingerprint(data), hashlib.sha256(data).hexdigest()}:
                raise UploadError(f"{upload.source} 与已有文档 {path.name} 内容相同")

    def delete(self, file: str, progress: Progress | None = None) -> BuildReport:
        """Remove one document file and re-index; return the build report. On failure the file is restored."""
        with self._change:
            names = {name: path for name, path in document_files(self.docs_dir).items()
                     if path.suffix.lower() in UPLOAD_SUFFIXES}
            if file not in names:
                raise UploadError(f"知识库中没有文件“{file}”")
            if len(names) == 1:
                raise UploadError("这是最后一篇文档：知识库至少要保留一篇，请先上传新文档再删除它")
            path = names[file]
            tag = uuid.uuid4().hex[:8]
            held = path.with_name(f".{path.name}.{tag}.deleted")  # ignored by the loader
            meta, meta_held = meta_path(path), path.with_name(f".{meta_path(path).name}.{tag}.deleted")
            os.replace(path, held)
            if meta.exists():
                os.replace(meta, meta_held)
            try:
                report = self._rebuild(progress)
            except BaseException:
                os.replace(held, path)
                if meta_held.exists():
                    os.replace(meta_held, meta)
                raise
            held.unlink(missing_ok=True)
            meta_held.unlink(missing_ok=True)
            return report

    def _files(self) -> list[Path]:
        if not self.docs_dir.is_dir():
            return []
        return [p for p in document_files(self.docs_dir).values() if p.suffix.lower() in UPLOAD_SUFFIXES]

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
                index = _ready(load_index(self.index_dir, self._embedder))
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


def _ready(index: Index) -> Index:
    """Build what questions need from a new build before it is swapped in (the English glossary, ~1.4 s),
    so the first English question after an upload or rebuild does not wait for it."""
    glossary_for(index.keywords)
    return index


# The reasons `rag index` gives in English, as the (Chinese) page names them.
_SKIP_REASONS = {limits.UNSUPPORTED: "不支持的文件类型", limits.TOO_LARGE: "超出上限", limits.DAMAGED: "无法读取",
                 limits.ENCRYPTED: "已加密", limits.EMPTY: "没有文字", limits.TIMED_OUT: "转换超时",
                 limits.NO_OCR: "需要 OCR 组件", limits.DUPLICATE: "重复"}
# The details rag.load writes in English (converters write theirs in Chinese).
_DETAILS = [(re.compile(r"no text"), ""),
            (re.compile(r"([\d.]+) MB, over the (\d+) MB limit"), r"\1 MB，超过了 \2 MB 的上限")]


def skip_reason(reason: str) -> str:
    """Return why a file was not indexed, in Chinese: "超出上限（30.0 MB，超过了 5 MB 的上限）"."""
    kind, _, detail = reason.partition(": ")
    if kind not in _SKIP_REASONS or not detail:
        return reason
    for pattern, chinese in _DETAILS:
        if pattern.fullmatch(detail):
            detail = pattern.sub(chinese, detail)
    label = _SKIP_REASONS[kind]
    if not detail or detail.startswith(label):  # "无法读取 a.pdf：…" says it already
        return detail or label
    return f"{label}（{detail}）"


def skipped_summary(skipped) -> list[str]:
    """Return the page's lines on the files a build did not index, one per reason: "未索引（已加密）1 个：a.pdf"."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped:
        by_reason.setdefault(_SKIP_REASONS.get(reason.partition(": ")[0], "其他原因"), []).append(name)
    return [f"未索引（{label}）{len(names)} 个：{'、'.join(names)}" for label, names in by_reason.items()]


def document_note(doc: Document) -> str:
    """Return the 备注 of a document: what it was converted from, its pages, tables and OCR, its size."""
    parts = []
    if doc.source and doc.source != doc.file:
        parts.append(f"由 {doc.source} 转换")
    tables = sum(1 for r in doc.regions if r.kind == "table")
    rows = sum(1 for r in doc.regions if r.kind == "row")
    ocr = [r.confidence for r in doc.regions if r.kind == "ocr" and r.confidence is not None]
    parts.extend(doc.notes)
    if tables:
        parts.append(f"{tables}个表格共{rows}行")
    if ocr:
        low = sum(1 for c in ocr if c < LOW_CONFIDENCE)
        parts.append(f"OCR识别{len(ocr)}行" + (f"，{low}行置信度低" if low else ""))
    parts.append(f"{len(doc.text)}字")
    return "；".join(parts)


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
