"""Write eval/documents/: the issue-15 test documents (a multi-page PDF, a PDF with tables, an .xlsx, a .docx
with a table, a scan), converted exactly as an upload is, for `eval/gold_documents.jsonl`.

    python scripts/make_eval_documents.py            # rewrites eval/documents/ (needs reportlab and the OCR extra)
    rag index --docs eval/documents --index /tmp/docs-index
    rag eval --gold eval/gold_documents.jsonl --index /tmp/docs-index --mode hybrid --answer reader
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.kb import prepare_upload  # noqa: E402
from tests.documents import SCAN_LINES, docx_with_table, scanned_pdf, table_pdf, text_pdf, xlsx_bytes  # noqa: E402


def main() -> None:
    out = ROOT / "eval" / "documents"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    inputs = [("航运报告.pdf", text_pdf()), ("渡轮统计.pdf", table_pdf()), ("港口吞吐量.xlsx", xlsx_bytes()), ("渡轮一览.docx", docx_with_table()),
              ("渡轮扫描件.pdf", scanned_pdf([["嘉陵江渡轮资料汇编", "目录与说明。"], SCAN_LINES]))]
    for name, data in inputs:
        upload = prepare_upload(name, data)
        (out / upload.name).write_bytes(upload.data)
        if upload.meta is not None:
            (out / (Path(upload.name).stem + ".meta.json")).write_bytes(upload.meta)
        print(f"{name} -> {upload.name}")


if __name__ == "__main__":
    main()
