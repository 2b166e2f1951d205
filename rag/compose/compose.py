"""Answer a question by parts: each sub-question over its own retrieval, read by the reader, checked
against the question's year, place and subject, then composed into one cited line.

A part whose best reading states another year's figure, a target, another place's or the other
subject's figure is read further (the next windows); when nothing fits, the part is missing and the
answer says so instead of guessing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag import text as textmod
from rag.compose.quantities import Quantity, compare, dates, quantities
from rag.compose.qualify import mismatch
from rag.compose.shapes import QuestionShape, SubQuestion
from rag.cite import make_citation
from rag.reading import Reading, ReadingWindow, quote_span, reading_windows
from rag.retrieve import Retriever
from rag.types import Answer, AnswerMode, Citation, Hit, Mode, Part, Shape

LIST_ITEMS = 5  # a list answer quotes at most this many passages
FURTHER = 5  # sentences read further when the first windows hold no fitting answer
_LARGER = "多高大长快强晚"
_SAME_FIGURE = "与另一部分是同一个数字"
_RATE = re.compile(r"增速|增长|增幅|比重|占比|比例|百分")  # asks a percentage
_CLAUSE = re.compile(r"[^，,；;。！？!?、]+")  # "、" too: "数字化车间1231个、智能工厂211个" are two figures
_ASKS_FIGURE = re.compile(r"多少|几[个家项台辆所次年成倍万亿%件篇名]|多大|多高|多长|比例|比重|占比|增速|规模")
_OPPOSITE = dict(zip("多高大长快强晚少低小短慢弱早", "少低小短慢弱早多高大长快强晚"))


@dataclass(frozen=True)
class Found:
    """One part's outcome: the reading that answers it (None when missing) and the passages searched."""

    sub: SubQuestion
    reading: Reading | None
    confidence: float
    hits: tuple[Hit, ...]
    note: str = ""  # why no reading fitted


class Composer:
    """Splits, answers by parts with an `Answerer`'s reader and index, and composes the answer."""

    def __init__(self, answerer) -> None:
        self.answerer = answerer
        self.index = answerer.index

    def run(self, question: str, resolved: str, shape: QuestionShape, mode: Mode, k: int) -> Answer:
        """Return the composed answer to `question` (`resolved`: the follow-up as understood)."""
        began = time.perf_counter()
        if shape.shape is Shape.LIST:
            found = self._list(shape.parts[0], shape, mode, k)
        else:
            found, taken = [], []
            subjects = [p.subject for p in shape.parts]
            for sub in shape.parts:
                others = [s for s in subjects if s and s != sub.subject]
                part = self._part(sub, shape, mode, k, others, taken)
                found.append(part)
                if part.reading is not None:
                    taken.append(part.reading)
        answer = self._compose(question, resolved, shape, found, mode)
        return replace(answer, timings={"compose": time.perf_counter() - began})

    def _readings(self, question: str, mode: Mode, k: int, further: bool = True):
        """Yield (reading, confidence) best first, then (with `further`) the next windows' readings;
        the hits searched are in `self._hits` once the first is yielded."""
        from rag.answer import searched_profile

        answerer = self.answerer
        retriever = Retriever(self.index, answerer.retrieval)
        hits = retriever.run(question, mode=mode, k=k)
        self._hits = tuple(hits)
        if not hits:
            return
        profile = searched_profile(question, retriever)
        ranked = answerer.extractive.candidates(profile, retriever.query_vector(question), hits)
        unseen = answerer.extractive.unseen(profile)
        first = answerer.settings.answer.read_sentences
        batches = [ranked[:first]] + ([ranked[first : first + FURTHER]] if further else [])
        seen = set()
        for batch in batches:
            windows = [w for w in reading_windows(self.index, batch, len(batch)) if (w.hit.chunk.id, w.start) not in seen]
            seen.update((w.hit.chunk.id, w.start) for w in windows)
            for reading in answerer.reading.read_all(question, windows, unseen):
                confidence = answerer.reading.confidence(reading.features)
                yield self._realign(reading, question), confidence, profile

    def _realign(self, reading: Reading, question: str, avoid: Sequence[Reading] = ()) -> Reading:
        """Move a figure's answer to the clause, of its sentence or a neighbour, that names what was asked.

        The reader reads "2025年，重庆汽车产量达278.8万辆……；新能源汽车产量129.6万辆" and may answer the
        first figure to "新能源汽车产量是多少": the clause sharing the question's rarer words holds the figure.
        """
        hit, text = reading.hit, reading.hit.chunk.text
        if not _ASKS_FIGURE.search(question) or len(textmod.normalize(text)) != len(text):
            return reading  # figures are found on the normalized text: its offsets must be the text's
        units = sorted((s, e) for s, e, _ in self.index.sentence_units(self.index.chunk_position(hit.chunk.id)))
        units = [u for u in units if u != (0, len(text))] or [(0, len(text))]
        at = next((i for i, (s, e) in enumerate(units) if s <= reading.answer[0] < e), None)
        if at is None:
            return reading
        asked = {t: self.index.idf(t) for t in textmod.tokenize(question)}

        def score(clause: str) -> float:
            present = set(textmod.tokenize(clause))
            return sum(w for t, w in asked.items() if t in present)

        clauses = [(units[i], m.start() + units[i][0], m.end() + units[i][0])
                   for i in range(max(0, at - 1), min(len(units), at + 2))
                   for m in _CLAUSE.finditer(text[slice(*units[i])])]
        # The figure the reader gave, and the clause it sits in ("2025年，重庆汽车产量达278.8万辆" → 278.8万辆).
        given = quantities(text[reading.answer[0] : reading.answer[1]])
        if not given:
            return reading
        unit, at_figure = given[0].unit, reading.answer[0] + given[0].start
        mine = next(((u, a, b) for u, a, b in clauses if a <= at_figure < b), None)
        if mine is None:
            return reading
        # Only to a figure of the same kind: "增长9.7%" must not move to "278.8万辆".
        taken = [t.answer for t in avoid if t.hit.chunk.id == hit.chunk.id]
        free = lambda a, b: not any(x < b and a < y for x, y in taken)  # noqa: E731 - another part's figure
        figured = [(score(text[a:b]), u, a, b) for u, a, b in clauses
                   if free(a, b) and any(q.unit == unit for q in quantities(text[a:b]))]
        if not figured:
            return reading
        # On a tie the reader's own sentence wins: a neighbour may be a plan ("到2027年……智能工厂40个").
        best, span, a, b = max(figured, key=lambda x: (round(x[0], 6), x[1] == units[at]))
        if best <= (score(text[mine[1]:mine[2]]) if free(mine[1], mine[2]) else 0.0) + 1e-9:
            return reading
        figure = next(q for q in quantities(text[a:b]) if q.unit == unit)
        answer = (a + figure.start, a + figure.end)
        window = ReadingWindow(hit, span[0], span[1], (span,))
        return replace(reading, answer=answer, quote=quote_span(window, answer))

    def _part(self, sub: SubQuestion, shape: QuestionShape, mode: Mode, k: int, others: Sequence[str],
              taken: Sequence[Reading]) -> Found:
        cut = None
        notes = []
        self._hits = ()
        for reading, confidence, profile in self._readings(sub.question, mode, k):
            cut = self.answerer.settings.answer.reader_cut(profile.english)
            if confidence < cut:
                break  # as unsure as a plain answer that abstains: look no further
            reason = self._misfit(reading, sub, shape, others, taken)
            if reason == _SAME_FIGURE:  # the reader gave the other part's figure: the sentence may hold this one's
                moved = self._realign(reading, sub.question, avoid=taken)
                reason = self._misfit(moved, sub, shape, others, taken) if moved is not reading else reason
                reading = moved
            if reason:
                notes.append(reason)
                continue
            return Found(sub, reading, confidence, self._hits)
        return Found(sub, None, 0.0, self._hits, notes[0] if notes else "")

    def _list(self, sub: SubQuestion, shape: QuestionShape, mode: Mode, k: int) -> list[Found]:
        """Every passage's answer to a list question, deduplicated, at most LIST_ITEMS."""
        out: list[Found] = []
        self._hits = ()
        for reading, confidence, profile in self._readings(sub.question, mode, k, further=False):
            if confidence < self.answerer.settings.answer.reader_cut(profile.english):
                if out:
                    continue  # a later window may still hold an item the reader is sure of
                break
            reading = _enumeration(reading)
            if self._misfit(reading, sub, shape, (), ()):
                continue
            short = textmod.squash(_span(reading))
            if any(short in textmod.squash(_span(f.reading)) or textmod.squash(_span(f.reading)) in short for f in out):
                continue
            out.append(Found(sub, reading, confidence, self._hits))
            if len(out) == LIST_ITEMS:
                break
        return out or [Found(sub, None, 0.0, self._hits)]

    def _misfit(self, reading: Reading, sub: SubQuestion, shape: QuestionShape, others: Sequence[str],
                taken: Sequence[Reading]) -> str:
        """Return why `reading` does not answer `sub` (another year, a target, another subject), or ""."""
        text = reading.hit.chunk.text
        q0, q1 = reading.quote
        a, b = reading.answer
        paragraph = text[text.rfind("\n", 0, q0) + 1 : q0]
        reason = mismatch(shape.qualifiers, text[q0:q1], a - q0, b - q0, context=paragraph)
        if reason:
            return reason
        if any(t.hit.chunk.id == reading.hit.chunk.id and t.answer[0] < b and a < t.answer[1] for t in taken):
            return _SAME_FIGURE
        figure_asked = shape.shape is Shape.COMPARISON or _ASKS_FIGURE.search(sub.question)
        if figure_asked and shape.shape is not Shape.QUALIFIED:
            figure = _figure(_span(reading), shape.adjective or _when(sub.question))
            if figure is None:
                return "答案中没有数字"
            if _RATE.search(sub.question) and figure.unit != "%":
                return "答案不是百分比"
        if sub.subject and shape.shape in (Shape.COMPARISON, Shape.FACTS):
            if not _mentioned(sub.subject, text):
                return f"段落没有提到{sub.subject}"
            other = _nearer_subject(sub.subject, others, text, a) if others else ""
            if other:
                return f"句中说的是{other}"
        return ""

    def _compose(self, question: str, resolved: str, shape: QuestionShape, found: Sequence[Found], mode: Mode) -> Answer:
        from rag.answer import _display, abstain_text, profile_question

        citations: list[Citation] = []
        parts: list[Part] = []
        lines: list[str] = []
        for f in found:
            if f.reading is None:
                parts.append(Part(f.sub.question, "", None, f.note))
                name = f.sub.subject or "答案"
                lines.append(f"{name}：资料中没有找到（{f.sub.question}）" + (f"，{f.note}" if f.note else ""))
                continue
            n = len(citations) + 1
            citation = make_citation(self.index, n, f.reading.hit, *f.reading.quote, answer=f.reading.answer)
            short = _display(_span(f.reading))
            if shape.shape in (Shape.COMPARISON, Shape.FACTS):
                figure = _figure(short, shape.adjective or _when(f.sub.question))
                short = figure.text if figure is not None and _ASKS_FIGURE.search(f.sub.question) else short
            quote = _display(citation.sentence)
            citations.append(citation)
            parts.append(Part(f.sub.question, short, citation))
            if shape.shape is Shape.QUALIFIED:
                shown = "" if len(short) >= 0.8 * len(quote) else short
                lines.append(f"{shown}\n{quote}[{n}]" if shown else f"{quote}[{n}]")
            else:
                name = f.sub.subject or short
                lines.append(f"{name}：{short}——{quote}[{n}]" if f.sub.subject else f"{quote}[{n}]")
        hits = _union([h for f in found for h in f.hits])
        abstained = not citations
        confidence = min((f.confidence for f in found if f.reading is not None), default=0.0)
        if shape.shape is Shape.QUALIFIED:
            head = ""
            if abstained:
                note = found[0].note
                lines = [abstain_text(profile_question(resolved)) + (f"（找到的句子不符：{note}）" if note else "")]
        else:
            head = self._head(shape, found, parts)
            if abstained:
                lines = [abstain_text(profile_question(resolved))] + lines
        text = "\n".join(([head] if head and not abstained else []) + lines)
        short = head if head and not abstained else (parts[0].short if len(parts) == 1 else "")
        return Answer(question, text, tuple(citations), hits, abstained, AnswerMode.READER, mode, confidence,
                      resolved, short=short, shape=shape.shape, parts=tuple(parts))

    def _head(self, shape: QuestionShape, found: Sequence[Found], parts: Sequence[Part]) -> str:
        """The composed line: the winner and the difference, the facts side by side, or the list."""
        if shape.shape is Shape.LIST:
            return "、".join(p.short for p in parts if p.short)
        named = [f"{f.sub.subject}{p.short}" if p.short else f"{f.sub.subject}没有找到" for f, p in zip(found, parts)]
        if shape.shape is Shape.FACTS:
            return "；".join(named)
        missing = [f.sub.subject for f, p in zip(found, parts) if not p.short]
        if missing:
            return f"无法比较：资料中没有找到{'、'.join(missing)}的数字。"
        figures = [_figure(p.short, shape.adjective) for p in parts]
        a, b = figures[0], figures[1]
        if a is None or b is None:
            return f"无法比较：{'，'.join(named)}。"
        result = compare(a, b)
        if result is None:
            return f"无法比较：单位不同（{'，'.join(named)}）。"
        if result.larger is None:
            return f"无法确定哪个更{shape.adjective}：{'，'.join(named)}。"
        adjective = shape.adjective
        # "更早" is the smaller date, "更少" the smaller count: the winner is the smaller one.
        winner = result.larger if adjective in _LARGER else 1 - result.larger
        subjects = [f.sub.subject for f in found]
        if shape.asks_difference:
            word = adjective if winner == 0 else _OPPOSITE[adjective]
            difference = f"{word}{result.difference}" if result.difference else word
            return f"{subjects[0]}比{subjects[1]}{difference}：{'，'.join(named)}。"
        gap = f"，相差{result.difference}" if result.difference and result.difference != "相同" else ""
        return f"{subjects[winner]}更{adjective}：{'，'.join(named)}{gap}。"


# "接入英伟达、昇腾、海光等六种技术路线": the items before a count of them.
_ITEMS_BEFORE_COUNT = re.compile(r"[^，,。；;：:]*?([^，,。；;：:、在与和]{2,}(?:、[^，,。；;：:、]{1,}?)+)等?\s*(?:\d+|[一二两三四五六七八九十]+)\s*[个种项类家所条大座位]")


def _enumeration(reading: Reading) -> Reading:
    """A list question answered by a count ("六种技术路线") is answered by the items counted instead."""
    text = reading.hit.chunk.text
    q0, q1 = reading.quote
    a, b = reading.answer
    if not quantities(text[a:b]) and not re.match(r"\s*[\d一二两三四五六七八九十]", text[a:b]):
        return reading
    for m in _ITEMS_BEFORE_COUNT.finditer(text, q0, q1):
        if m.end() >= a and m.start(1) < a + 1 or (m.start() <= a < m.end()):
            start, end = m.start(1), m.end(1)
            if q0 <= start < end <= q1:
                return replace(reading, answer=(start, end))
    return reading


def _span(reading: Reading) -> str:
    return reading.hit.chunk.text[reading.answer[0] : reading.answer[1]]


def _figure(short: str, adjective: str) -> Quantity | None:
    """The figure a comparison compares in a short answer: a date for "早/晚", else a quantity."""
    # "" is in every string: only a named "早"/"晚" (or "when") asks for a date.
    found = dates(short) if adjective and adjective in "早晚" else quantities(short)
    return found[0] if found else None


def _when(question: str) -> str:
    """"早" when a sub-question asks for a time (its figure is a date), else ""."""
    return "早" if re.search(r"什么时候|何时|哪天|哪一天|哪年|哪一年|日期", question) else ""


def _keys(subject: str) -> list[str]:
    """How a subject may be mentioned: in full, or by its first word ("长安数智工厂" → "长安")."""
    words = [w for w in textmod.words(subject) if len(w) >= 2]
    return [subject] + words[:1]


def _mentioned(subject: str, text: str) -> bool:
    """True when the passage names the subject, in full or by its first word."""
    normalized = textmod.normalize(text)
    return any(textmod.normalize(key) in normalized for key in _keys(subject))


def _nearer_subject(subject: str, others: Sequence[str], text: str, answer_start: int) -> str:
    """Return the other subject mentioned last before the answer, when it comes after this subject's
    last mention (the figure belongs to it), or ""."""
    mine = _keys(subject)
    theirs = {o: _keys(o) for o in others}
    if any(m in t or t in m for keys in theirs.values() for m in mine for t in keys):
        return ""  # "汽车产量" and "新能源汽车产量" cannot be told apart by mention
    before = textmod.normalize(text[:answer_start])
    last_mine = max(before.rfind(textmod.normalize(m)) for m in mine)
    for other, keys in theirs.items():
        last_other = max(before.rfind(textmod.normalize(t)) for t in keys)
        if last_other > last_mine:
            return other
    return ""


def _union(hits: Sequence[Hit]) -> tuple[Hit, ...]:
    seen, out = set(), []
    for hit in hits:
        if hit.chunk.id not in seen:
            seen.add(hit.chunk.id)
            out.append(hit)
    return tuple(out)
