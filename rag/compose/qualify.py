"""Does a sentence state the fact of the year, the place and the status the question asks about?

"2025年重庆新能源汽车产量" is not answered by "两江新区……2026年新能源汽车产量将突破100万辆": another
year, a part of the place asked, and a target rather than a figure achieved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag import text as textmod

_YEAR = re.compile(r"((?:19|20)\d\d)\s*(?:年|—|-|–|至)")
_RELATIVE_TIME = re.compile(r"去年|今年|上年|目前|截至|截止|当前|现在|至今|眼下")
# A sentence's clause stating a plan, not a result ("将突破", "力争", "到2027年").
# "将" alone also means "把" ("将300多家企业接入"), so only "将" before a verb of reaching counts.
_TARGET = re.compile(r"将(?:突破|达到?|超过?|实现|建成|形成|取得|增长|提升|成为|新增|培育|建设)|目标|力争|(?<!行动)计划(?!项目)|"
                     r"预计|争取|规划|拟|剑指|要(?:在|达|突破|实现)|到\s*(?:19|20)\d\d\s*年")
_TARGET_QUESTION = re.compile(r"将|目标|力争|计划|预计|争取|规划|拟|要|到\s*(?:19|20)\d\d\s*年|预期|打算")
_CLAUSE = re.compile(r"[，,；;。！？!?]")
# Place words that name no particular place ("全市", "本区"), so never count as another place.
_GENERIC_PLACE = re.compile(r"^(全|本|该|各|此|我)")
# A domain term taught to jieba (rag/data/domain_terms.txt, "两江新区") loses its place tag ('x'):
# such a word still names a place when it ends like one.
_PLACE_TERM = re.compile(r"..+(?:新区|开发区|自贸区|园区|区|县|市|省|镇|乡)$")


@dataclass(frozen=True)
class Qualifiers:
    """The time, place and status a question asks about."""

    years: frozenset[int] = frozenset()
    relative: bool = False  # "目前", "去年": a time named without a year
    places: frozenset[str] = frozenset()
    wants_target: bool = False  # the question asks for a plan ("目标是多少", "将突破多少")

    @property
    def timed(self) -> bool:
        """True when the question names a year or a time."""
        return bool(self.years) or self.relative


def qualifiers_of(question: str) -> Qualifiers:
    """Return the years, relative times, places and target wording of `question`."""
    normalized = textmod.normalize(question)
    return Qualifiers(
        years=frozenset(int(y) for y in _YEAR.findall(normalized)),
        relative=bool(_RELATIVE_TIME.search(normalized)),
        places=places(normalized),
        wants_target=bool(_TARGET_QUESTION.search(normalized)),
    )


def places(text: str) -> frozenset[str]:
    """Return the place names jieba tags in `text`, adjacent ones joined ("两江"+"新区" → "两江新区")."""
    out, run = set(), ""
    for word, flag in textmod.tagged_words(text):
        if flag == "ns" or (flag == "x" and _PLACE_TERM.match(word)):
            run += word
            continue
        if len(run) >= 2 and not _GENERIC_PLACE.match(run):
            out.add(run)
        run = ""
    if len(run) >= 2 and not _GENERIC_PLACE.match(run):
        out.add(run)
    return frozenset(out)


def mismatch(asked: Qualifiers, sentence: str, answer_start: int, answer_end: int, context: str = "") -> str:
    """Return why `sentence` does not state the fact asked (its answer at [answer_start, answer_end)), or "".

    The year must be the asked one when the sentence names years; a plan ("将突破") is no answer to a
    question about what was achieved; a place the question does not name, when the sentence names
    none of the question's places, is another place's figure. A sentence naming no year takes the
    year of its `context` (the paragraph before it): "2025年，重庆汽车产量……；新能源汽车产量129.6万辆".
    """
    normalized = textmod.normalize(sentence)
    clause = _clause(normalized, answer_start, answer_end)
    before = normalized[:answer_end]
    if asked.years:
        years = ({int(y) for y in _YEAR.findall(before)} or {int(y) for y in _YEAR.findall(normalized)}
                 or _last_year(textmod.normalize(context)))
        if years and not years & asked.years:
            return f"句中是{'、'.join(str(y) for y in sorted(years))}年的数字"
    if not asked.wants_target and _TARGET.search(clause):
        return "句中是目标或计划，不是已实现的数字"
    if asked.places:
        named = places(before)
        if named and not any(p in before or any(p in n or n in p for n in named) for p in asked.places):
            return f"句中说的是{'、'.join(sorted(named))}"
    return ""


def _last_year(context: str) -> set[int]:
    found = _YEAR.findall(context)
    return {int(found[-1])} if found else set()


def _clause(text: str, start: int, end: int) -> str:
    """The clause of `text` holding [start, end): from the break before it to the break after it."""
    breaks = [m.start() for m in _CLAUSE.finditer(text)]
    left = max([b + 1 for b in breaks if b < start], default=0)
    right = min([b for b in breaks if b >= end], default=len(text))
    return text[left:right]
