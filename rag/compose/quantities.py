"""Figures in text: a number with its unit and how exact it is ("300多台" is at least 300, under 400).

A figure is read as an interval [low, high] in base units (万辆 → 辆 × 10 000), so two figures compare
only when their units agree and their intervals do not overlap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rag import text as textmod

_SCALES = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "千": 1e3, "百": 1e2}
_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = ("个百分点", "平方公里", "平方米", "公里", "千米", "%", "倍", "成", "元", "台", "辆", "项", "个", "家", "所",
          "件", "篇", "名", "人", "次", "座", "条", "例", "吨", "P", "米", "亩", "期", "版", "分钟", "小时", "天", "秒",
          "年", "种", "类", "位", "支", "款", "批", "场", "届", "户", "张")
_LOWER = r"超过|超|逾|突破|达到|达|高于|以上"  # "超过3000台": more than 3000 ("达" only states it: exact)
_NUMBER = re.compile(
    r"(?P<pre>超过|超|逾|突破|近|约|将近|接近|不到|不足|少于)?\s*"
    r"(?P<num>\d[\d,]*(?:\.\d+)?|[零〇一二两三四五六七八九十百千]+)\s*"
    r"(?P<more>多|余)?\s*(?P<scale>万亿|亿|万|千|百)?\s*(?P<more2>多|余)?\s*"
    r"(?P<unit>" + "|".join(re.escape(u) for u in _UNITS) + r")"
    r"(?P<post>以上|以下|左右|多)?"
)
_DATE = re.compile(r"(?:(?P<y>(?:19|20)\d\d)\s*年)?\s*(?:(?P<m>\d{1,2})\s*月)(?:\s*(?P<d>\d{1,2})\s*[日号])?|(?P<yo>(?:19|20)\d\d)\s*年")


@dataclass(frozen=True)
class Quantity:
    """A figure as written ("300多台") and read: an interval of base units and the unit it counts."""

    text: str
    low: float
    high: float
    unit: str  # "台", "辆", "元", "%", "date"
    scale: float = 1.0  # the written multiplier (万辆 → 1e4), used to state a difference the same way
    start: int = 0  # where the figure starts in the text it was read from
    end: int = 0

    @property
    def exact(self) -> bool:
        """True when the figure is one number, not a bound or an estimate."""
        return self.low == self.high


def chinese_number(text: str) -> float | None:
    """Return the value of a Chinese numeral ("三十", "两百"), or None when it is not one."""
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch in "十百千":
            step = {"十": 10, "百": 100, "千": 1000}[ch]
            total += (current or 1) * step
            current = 0
        else:
            return None
    return float(total + current)


def _value(num: str) -> float | None:
    if num[0].isdigit():
        try:
            return float(num.replace(",", ""))
        except ValueError:
            return None
    return chinese_number(num)


def quantities(text: str) -> list[Quantity]:
    """Return the figures of `text` with units, in order; years, months and days are not figures."""
    normalized = textmod.normalize(text)
    out = []
    for m in _NUMBER.finditer(normalized):
        unit = m["unit"]
        if unit == "年" and (m["scale"] or len(m["num"]) == 4):
            continue  # "2025年" is a date, not a count of years
        value = _value(m["num"])
        if value is None:
            continue
        scale = _SCALES.get(m["scale"] or "", 1.0)
        if unit == "%":
            unit = "%"
        elif unit == "成":  # "三成" is 30 %
            value, unit = value * 10, "%"
        low = high = value * scale
        if m["more"] or m["more2"] or m["post"] == "多":
            # "300多": 300 up to the next step of its last non-zero digit (300 → under 400).
            digits = m["num"].replace(",", "").split(".")[0]
            zeros = len(digits) - len(digits.rstrip("0")) if digits.isdigit() else 0
            high = (value + 10 ** zeros) * scale if digits.isdigit() and value >= 10 else value * scale * 1.5
        if m["pre"] in ("超过", "超", "逾", "突破") or m["post"] == "以上":
            high = math.inf
        elif m["pre"] in ("近", "约", "将近", "接近") or m["post"] == "左右":
            low, high = low * 0.9, high * 1.1
        elif m["pre"] in ("不到", "不足", "少于") or m["post"] == "以下":
            low = 0.0
        out.append(Quantity(m.group().strip(), low, high, unit, scale, m.start(), m.end()))
    return out


def dates(text: str) -> list[Quantity]:
    """Return the dates of `text` ("2025年9月8日", "5月22日", "2025年") as day numbers, for earlier/later."""
    out = []
    for m in _DATE.finditer(textmod.normalize(text)):
        year = int(m["y"] or m["yo"] or 0)
        month, day = int(m["m"] or 0), int(m["d"] or 0)
        if month > 12 or day > 31:
            continue
        if not month:  # a whole year: its first day to its last
            low, high = year * 372.0, year * 372.0 + 371
        elif not day:
            low, high = year * 372.0 + (month - 1) * 31, year * 372.0 + (month - 1) * 31 + 30
        else:
            low = high = year * 372.0 + (month - 1) * 31 + day - 1
        out.append(Quantity(m.group().strip(), low, high, "date", 1.0, m.start(), m.end()))
    return out


@dataclass(frozen=True)
class Comparison:
    """Which of two figures is larger, and by how much (a range when either is a bound)."""

    larger: int | None  # 0 or 1: which figure; None when their intervals overlap
    difference: str  # "171台", "71至171台", "至少2700台", "" when not stated


def compare(a: Quantity, b: Quantity) -> Comparison | None:
    """Return how `a` and `b` compare, or None when their units differ."""
    if a.unit != b.unit:
        return None
    if a.low > b.high or (a.low == b.high and a.high > a.low):  # "超过3000" beats 3000
        larger = 0
    elif b.low > a.high or (b.low == a.high and b.high > b.low):
        larger = 1
    elif a.exact and b.exact and a.low == b.low:
        return Comparison(None, "相同")
    else:
        return Comparison(None, "")
    big, small = (a, b) if larger == 0 else (b, a)
    if a.unit == "date":
        return Comparison(larger, "")
    return Comparison(larger, _difference(big.low - small.high, big.high - small.low, big, small))


def _difference(least: float, most: float, big: Quantity, small: Quantity) -> str:
    unit = "个百分点" if big.unit == "%" else big.unit
    scale = min(big.scale, small.scale)
    prefix = {1e12: "万亿", 1e8: "亿", 1e4: "万"}.get(scale, "")
    if unit == "元" and not prefix and least >= 1e8:
        prefix, scale = "亿", 1e8

    def show(value: float, with_unit: bool = True) -> str:
        return f"{round(value / scale, 2):g}" + (f"{prefix}{unit}" if with_unit else "")

    if math.isinf(most):
        return f"至少{show(least)}" if least > 0 else ""
    if abs(most - least) < 1e-9:
        return show(least)
    return f"{show(max(least, 0), with_unit=False)}至{show(most)}"
