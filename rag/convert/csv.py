"""CSV: the rows of a comma, semicolon or tab separated text as passages (the first row names the columns)."""

from __future__ import annotations

from pathlib import Path

from rag.convert.limits import TOO_LARGE, Budget, ConversionError
from rag.convert.result import Converted, TextBuilder
from rag.convert.tables import csv_table, tables_text
from rag.load import DecodeError, decode


def csv_text(data: bytes, name: str = "表格", progress=None) -> Converted:
    """Return the rows of a .csv as "列名：值；…" lines (the first row names the columns)."""
    budget = Budget(name)
    try:
        text, _ = decode(data)
        table = csv_table(text.lstrip("\ufeff"), Path(name).stem, budget)
    except DecodeError as exc:
        raise ConversionError(f"{name} 不是可识别的文本：{exc}") from exc
    except ConversionError:
        raise
    except ValueError as exc:
        raise ConversionError(f"{name}：{exc}：请拆分后再上传", TOO_LARGE) from exc
    # Each row repeats the header: 500 column names of 1,000 characters made 4 GB of a 4.8 MB file,
    # so the builder's budget stops it at the text limit instead.
    return tables_text(name, [table] if table else [], "CSV", TextBuilder(budget=budget))


