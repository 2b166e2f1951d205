"""Keep a short answer's figure or date whole: its qualifier, its unit and the rest of its date.

A reader trained on CMRC/DRCD boundaries often stops inside a quantity: "3000" out of "超过3000台",
"2026年" out of "2026年3月18日". A number shown without "超过", "多" or its unit says something the
text does not, so the span is widened to the whole expression, never beyond the text it came from.
"""

from __future__ import annotations

import re

# Words that bound a figure from one side; they change what the number claims.
_QUALIFIERS = ("超过", "不少于", "不低于", "不超过", "不足", "不到", "将近", "接近", "大约", "约", "近", "逾", "超",
               "多达", "至少", "最多", "仅")
_NUMBER = r"[0-9０-９.．,，]*[0-9０-９][0-9０-９.．]*|[零〇一二两三四五六七八九十百千万亿]+"
# After the digits: a magnitude, an approximation, then a unit (measure words and common units).
_MAGNITUDE = r"(?:[万亿千百]+)?"
_APPROX = r"(?:多|余|几|来)?"
_UNIT = (r"(?:%|％|‰|个百分点|倍|万辆|辆|万台|台|套|万吨|吨|千瓦时|千瓦|兆瓦|吉瓦|瓦|GW|MW|kW|万元|亿元|元|美元|"
         r"平方公里|平方千米|平方米|公顷|亩|公里|千米|米|万人|人次|人|名|位|家|个|项|座|所|条|款|件|场|次|岁|年|"
         r"小时|分钟|秒|天|周|月|层|张|部|架|艘|列|栋|期|批|类|种|颗|块|卡|PB|TB|GB|P|EFLOPS|PFLOPS|TOPS)?")
_FIGURE_TAIL = re.compile(rf"(?:{_NUMBER})?{_MAGNITUDE}{_APPROX}{_UNIT}")
_DATE = re.compile(r"(?<!\d)(?:\d{4}年\d{1,2}月(?:\d{1,2}日)?|\d{1,2}月\d{1,2}日)")


def whole_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Return (start, end) widened so a figure keeps its qualifier and unit and a date its month and day."""
    if not 0 <= start < end <= len(text):
        return start, end
    start, end = _whole_date(text, start, end)
    if _ends_in_number(text[start:end]):
        tail = _FIGURE_TAIL.match(text, end)
        if tail and tail.end() > end:
            end = tail.end()
    if _starts_with_number(text[start:end]):
        for qualifier in _QUALIFIERS:  # longest first where they share a character (不少于 before 于…)
            if text.endswith(qualifier, 0, start):
                start -= len(qualifier)
                break
    return start, end


def _whole_date(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that cuts a date ("2026年" of "2026年3月18日", "3月18日" of "2026年3月18日")."""
    for m in _DATE.finditer(text, max(0, start - 12), min(len(text), end + 12)):
        # A date crossing either edge of the span; one wholly inside it is already whole.
        if m.start() < end and m.end() > start and (m.start() < start or m.end() > end):
            start, end = min(start, m.start()), max(end, m.end())
    return start, end


# Chinese numerals count only as a whole span ("五"), not at the edge of a word ("唯一", "十分").
_CHINESE_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
_DIGITS_AT_END = re.compile(r"[0-9０-９][0-9０-９.．]*[万亿千百]*$")
_DIGITS_AT_START = re.compile(r"[0-9０-９]")


def _ends_in_number(span: str) -> bool:
    return bool(_DIGITS_AT_END.search(span) or _CHINESE_NUMBER.fullmatch(span))


def _starts_with_number(span: str) -> bool:
    return bool(_DIGITS_AT_START.match(span) or _CHINESE_NUMBER.match(span) and _ends_in_number(span))
