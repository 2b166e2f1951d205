"""The shape of a question: one fact, a comparison, several facts, a list, or a fact of a named time.

Rules over cue words and jieba's tags, measured on eval/compositional.jsonl. A comparison or a
question of several facts is split into one sub-question per subject: "长安数智工厂和赛力斯超级工厂的
焊装车间，哪个机器人更多？" → "长安数智工厂的焊装车间，机器人有多少？" and "赛力斯超级工厂的焊装车间，
机器人有多少？"; the shared words (the year, the place, the measured thing) go to each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag import text as textmod
from rag.compose.qualify import Qualifiers, qualifiers_of
from rag.types import Shape

_WHICH = r"(?:哪一个|哪个|哪家|哪座|哪所|哪项|哪一项|哪种|哪里|哪方|谁)"
_ADJECTIVES = "多少高低大小早晚快慢长短强弱"
# "哪个机器人更多", "谁的产量更高", "哪个更早"
_WHICH_MORE = re.compile(_WHICH + r"(?:的)?(?P<noun>[^，,。？?！!]*?)(?:更|最|比较|较|要)(?P<adj>[" + _ADJECTIVES + r"])(?:一些|一点|些)?(?P<verb>[^，,。？?！!]*)")
# "A比B多多少台", "A比B早几天", "A比B高多少"
_THAN = re.compile(r"(?P<a>.+?)比(?P<b>.+?)(?P<adj>[" + _ADJECTIVES + r"])(?:出|了)?(?P<how>多少|几)(?P<unit>[^\s？?。，,]*)")
_EARLIER_SELF = re.compile(r"(?:上年|去年|前年|上月|上季度|同期|(?:19|20)\d\d\s*年|此前|以前|原来|过去|之前)")
_TOTAL = re.compile(r"一共|总共|共计|合计|总计|加起来|共有")
_SEVERAL = re.compile(r"分别|各(?:是|有|为|自|多少|达|占)")
_LIST = re.compile(r"有哪些|哪些|哪几(?:个|家|项|所|位|种|类|条|座|款|名|大)|包括什么|包括哪|列举")
_ASKS_FIGURE = re.compile(r"多少|几[个家项台辆所次年成倍万亿%件篇名]|多大|多高|多长|何时|什么时候|哪天|哪一天|哪年|哪一年")
_JOIN = re.compile(r"和|与|跟|同|、|及|以及")
_AND = re.compile(r"和")
_NOT_JOIN = re.compile(r"和平|和谐|总和|温和|与会|同比|同期|同时|共同|相同|协同|合同|同步|同行|以及时")
_WH_ANY = re.compile(r"哪|谁|什么|多少|几|何")
# A subject that names a thing ("赛力斯超级工厂"), not a measure ("新能源汽车产量"): it takes the
# measured words after the first subject; a measure takes the year and place before it.
_ENTITY_END = re.compile(r"(?:工厂|公司|集团|大学|学院|研究院|研究所|实验室|中心|委员会|园|区|县|市|镇|省|平台|基金|医院|社区|"
                         r"汽车|企业|高地|湾区|新城|科学城|车企|机构|银行|局|部|厅|委)$")
_LEAD = re.compile(r"^(?:(?:到|在)?\s*(?:19|20)\d\d\s*年(?:\s*\d{1,2}\s*月)?[，,]?|去年|今年|目前[，,]?|截至[^，,]*[，,]?)*")


@dataclass(frozen=True)
class SubQuestion:
    """One part of a question: the question asked for it, and the subject it is about ("" for the whole)."""

    question: str
    subject: str = ""


@dataclass(frozen=True)
class QuestionShape:
    """A question's shape and the sub-questions that answer it."""

    shape: Shape
    parts: tuple[SubQuestion, ...] = ()
    adjective: str = ""  # a comparison's "多", "高", "早": what "larger" means
    asks_difference: bool = False  # "A比B多多少": the difference is the answer
    qualifiers: Qualifiers = field(default_factory=Qualifiers)

    @property
    def compositional(self) -> bool:
        """True when the question needs more than one span, or a check of its time."""
        return self.shape is not Shape.PLAIN


def recognise(question: str) -> QuestionShape:
    """Return the shape of `question`; PLAIN when no rule fits (it then takes the plain answer path)."""
    text = textmod.normalize(question).strip()
    qualifiers = qualifiers_of(text)
    for rule in (_comparison, _difference, _several):
        shape = rule(text, qualifiers)
        if shape is not None:
            return shape
    if _LIST.search(text):
        return QuestionShape(Shape.LIST, (SubQuestion(question),), qualifiers=qualifiers)
    if qualifiers.timed:
        return QuestionShape(Shape.QUALIFIED, (SubQuestion(question),), qualifiers=qualifiers)
    return QuestionShape(Shape.PLAIN, qualifiers=qualifiers)


def _comparison(text: str, qualifiers: Qualifiers) -> QuestionShape | None:
    match = _WHICH_MORE.search(text)
    if match is None:
        return None
    head = text[: match.start()].rstrip("，, ")
    subjects, tail = _subjects(head)
    if len(subjects) < 2:
        return None
    noun, adjective = match["noun"].strip("的 "), match["adj"]
    noun = re.sub(r"^(?:工厂|公司|企业|城市|地方|区|县|学校|机构|平台)的", "", noun)  # "哪个工厂的机器人总数"
    verb = match["verb"].strip("的呢吗")
    if adjective in "早晚":
        ask = f"是什么时候{verb}的？" if verb else "是什么时候？"
    else:
        ask = "有多少？" if noun else "是多少？"
    parts = tuple(SubQuestion(f"{s}{tail}{noun}{ask}", _short(s)) for s in _with_shared(subjects))
    return QuestionShape(Shape.COMPARISON, parts, adjective, qualifiers=qualifiers)


def _difference(text: str, qualifiers: Qualifiers) -> QuestionShape | None:
    match = _THAN.search(text)
    if match is None or _WH_ANY.search(match["b"]) or _EARLIER_SELF.match(match["b"].strip()):
        return None  # "比上年增长了多少" asks a growth, not a comparison of two subjects
    a, b = match["a"].strip("，, "), match["b"].strip("，, 的")
    if not a or not b:
        return None
    lead = _LEAD.match(a).group()
    subject_a, rest = _split_subject(a[len(lead):])
    kind_a, kind_b = _ENTITY_END.search(subject_a), _ENTITY_END.search(b)
    if kind_a and kind_b and kind_a.group() == kind_b.group() and rest:  # two factories: B takes A's "焊装车间的机器人"
        b_full = f"{lead}{b}{rest}"
    else:  # "2025年重庆汽车产量比新能源汽车产量多多少": B is a measure of the same year and place
        b_full = _with_shared([a, b])[1]
        subject_a = _short(a)
    unit = match["unit"].strip("？?")
    ask = "是什么时候？" if match["adj"] in "早晚" else f"是多少{unit if len(unit) <= 2 else ''}？"
    parts = (SubQuestion(f"{a}{ask}", _short(subject_a or a)), SubQuestion(f"{b_full}{ask}", _short(b)))
    return QuestionShape(Shape.COMPARISON, parts, match["adj"], asks_difference=True, qualifiers=qualifiers)


def _several(text: str, qualifiers: Qualifiers) -> QuestionShape | None:
    cue = _SEVERAL.search(text)
    if cue is not None:
        head, after = text[: cue.start()], text[cue.start() + 2 :] if cue.group() == "分别" else text[cue.start() + 1 :]
    else:
        # "A和B是多少？": two subjects joined, one figure asked, no "which" between them.
        ask = _ASKS_FIGURE.search(text)
        if ask is None or _TOTAL.search(text):
            return None  # "A和B一共有多少" asks one total
        cut = max(text.rfind(w, 0, ask.start()) for w in ("是", "有", "为", "达", "各", "共"))
        if cut <= 0:
            return None
        head, after = text[:cut], text[cut:]
    head = head.rstrip("，, ")
    if _WH_ANY.search(head):
        return None
    # Without "分别"/"各" only "和" joins two subjects: "与"/"及" more often sit inside a name
    # ("重庆脑与智能科学中心", "认知计算理论及应用").
    subjects, tail = _subjects(head, joins=_JOIN if cue is not None else _AND)
    if len(subjects) < 2:
        return None
    after = after.strip().lstrip("各").replace("?", "？") or "是多少？"
    parts = tuple(SubQuestion(f"{s}{tail}{after}", _short(s)) for s in _with_shared(subjects))
    return QuestionShape(Shape.FACTS, parts, qualifiers=qualifiers)


def _subjects(head: str, joins: re.Pattern = _JOIN) -> tuple[list[str], str]:
    """Split "A和B的焊装车间" into (["A", "B"], "的焊装车间"): the subjects and the words they share after."""
    pieces, at = [], 0
    for m in joins.finditer(head):
        if _NOT_JOIN.search(head[max(0, m.start() - 2) : m.end() + 2]):
            continue
        pieces.append(head[at : m.start()])
        at = m.end()
    pieces.append(head[at:])
    pieces = [p.strip("，, ") for p in pieces]
    if len(pieces) < 2 or any(len(p) < 2 for p in pieces):
        return [], ""
    last, tail = pieces[-1], ""
    # "赛力斯超级工厂的焊装车间": the words after a named thing are shared; "实施的市自然科学基金项目" is all subject.
    cut = re.search(r"，|,|(?<=[^，,]{2})的", last)
    named = lambda t: _ENTITY_END.search(t) or textmod.names(t)[1]  # noqa: E731
    if cut is not None and cut.start() >= 2 and (cut.group() != "的" or named(last[: cut.start()]) or _ENTITY_END.search(pieces[0])):
        last, tail = last[: cut.start()], last[cut.start() :]
    return pieces[:-1] + [last], tail


def _with_shared(subjects: list[str]) -> list[str]:
    """Give later subjects the year and place the first one starts with, unless they name a thing
    themselves: "2025年重庆汽车产量" and "新能源汽车产量" → "2025年重庆新能源汽车产量"."""
    first = subjects[0]
    lead = _LEAD.match(first).group()
    rest = first[len(lead):]
    place = next((p for p in sorted(textmod.names(rest)[1], key=len, reverse=True) if rest.startswith(p)), "")
    shared_place = place if place and len(rest) > len(place) and not _ENTITY_END.search(rest) else ""
    # "南岸区累计建成的市级数字化车间" and "先进级智能工厂": the second is also "南岸区累计建成的".
    qualifier = rest[: rest.rfind("的") + 1] if "的" in rest else ""
    out = [first]
    for subject in subjects[1:]:
        own_lead = _LEAD.match(subject).group()
        if qualifier and "的" not in subject and not textmod.names(subject)[1]:
            out.append(("" if own_lead else lead) + qualifier + subject)
            continue
        named = _ENTITY_END.search(subject) or textmod.names(subject)[1]
        prefix = ("" if own_lead else lead) + ("" if named else shared_place)
        out.append(prefix + subject)
    return out


def _split_subject(text: str) -> tuple[str, str]:
    """Split "长安数智工厂焊装车间的机器人" into its subject and the rest, at the first word ending a name."""
    words = textmod.words(text)
    at = 0
    for i, word in enumerate(words):
        at += len(word)
        if word == "的":
            return "".join(words[:i]), text[at - 1 :]
        if _ENTITY_END.search(word) and i + 1 < len(words):
            return text[:at], text[at:]
    return text, ""


def _short(subject: str) -> str:
    """The subject as named in a composed line: without the year it starts with."""
    return _LEAD.sub("", subject).strip("，, 的") or subject
