"""Files to text: one converter per family (pdf, office, html, image, csv), their limits and one result type.

`convert(data, name)` is the road every caller takes (uploads, `rag index`, the freshness checks);
converters import their heavy libraries on first use, so importing this package stays cheap.
"""

from rag.convert import limits
from rag.convert.limits import ConversionError
from rag.convert.registry import CONVERTED_SUFFIXES, SUPPORTED_SUFFIXES, convert
from rag.convert.result import Converted

__all__ = ["CONVERTED_SUFFIXES", "SUPPORTED_SUFFIXES", "ConversionError", "Converted", "convert", "limits"]
