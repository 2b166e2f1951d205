"""Answer a question from retrieved passages: extractive by default, an LLM when configured.

The extractive answerer copies the best one to three sentences of the passages, each with its
citation, and abstains when the evidence is weak. Sentence vectors come from the index (they were
embedded at build time), so answering costs one query embedding.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag import text as textmod
from rag.cite import make_citation
from rag.compose.compose import Composer
from rag.compose.shapes import recognise
from rag.config import AnswerConfig, Settings, load_settings
from rag.gloss import glossary_for
from rag.index import Index
from rag.injection import is_instruction
from rag.reader.reader import Reader
from rag.reading import ReaderAnswerer, reading_windows
from rag.retrieve import RetrievalConfig, Retriever, check_question, resolve_follow_up
from rag.types import Answer, AnswerMode, Hit, Mode

# Question-type cues: what kind of fact the question asks for.
_NUMBER_Q = re.compile(r"多少|几[个家项台辆所次年成倍万亿%]|多大|多高|多长|多远|多重|规模|比例|比重|占比|金额|数量|增长|增速|"
                       r"百分|how (many|much|large|big)|what (share|percentage|proportion)", re.I)
_DATE_Q = re.compile(r"何时|哪天|哪一天|哪年|哪一年|几月|什么时候|什么时间|日期|时间是|\bwhen\b|what (year|date|day)|which (year|date|day)", re.I)
_ENTITY_Q = re.compile(r"哪家|哪个|哪些|哪所|哪位|哪里|哪座|谁|什么机构|什么公司|什么单位|名称|叫什么|是什么|"
                       r"\bwho\b|\bwhich\b|\bwhere\b|\bwhat\b.*\bname", re.I)
_PERSON_Q = re.compile(r"谁|哪位|哪一位|什么人|\bwho\b", re.I)
_PLACE_Q = re.compile(r"哪里|哪儿|在哪(?=[？?。]|$)|什么地方|哪个(?:区|市|县|城市|省|地方|国家)|哪座城市|\bwhere\b", re.I)
_PLACE = re.compile(r"[\u4e00-\u9fff]{2,}(?:区|市|县|镇|省|新城)")
_LIST_Q = re.compile(r"哪些|有哪|包括什么|包括哪|列举|分别|几大|\bwhat are\b|\blist\b|\bwhich .+s\b", re.I)

# A quantity: digits (or Chinese numerals) followed by a unit, not a year, month or day.
_NUMBER = re.compile(r"(\d[\d,.]*|[一二两三四五六七八九十百千万]+)\s*(%|％|倍|成|万亿|亿|万|千|百|余|多)?\s*(?![年月日号])[\u4e00-\u9fff%a-zA-Z]")
_DATE = re.compile(r"(\d{4}\s*年)?\s*\d{1,2}\s*月(\s*\d{1,2}\s*日)?|\d{4}\s*年|[上下]半年|今年|去年|明年")
_ENTITY = re.compile(r"[\u4e00-\u9fff]{2,}(公司|集团|大学|学院|研究院|研究所|实验室|中心|委员会|局|厅|部|区|市|县|社区|平台|基金|工厂|园)|"
                     r"[A-Za-z][A-Za-z0-9]+|(记者|主任|经理|校长|院长|书记|董事长|总经理|委员|专家)[\u4e00-\u9fff]{2,3}")

_SENTENCE_END = re.compile(r"[。！？!?；;…][”’」』）)]*$")
_ABSTAIN_ZH = "资料中没有找到{topic}的相关信息。"
_ABSTAIN_EN = "The documents do not contain information about this question."

FEATURES = ("dense", "dense_english", "lexical", "passage_lexical", "bigram", "cue", "unit", "slot", "rank", "short", "heading")
# "多少台机器人" asks for a count of 台: the measure word the answer's number must carry.
_ASKED_UNIT = re.compile(r"(?:多少|几)\s*(万|亿|千|百)?\s*([^\s\d是的呢吗？?，,。个]|个)(?!什么)")
_CLAUSE_BREAK = re.compile(r"[，,；;：:]")


@dataclass(frozen=True)
class QuestionProfile:
    """What a question asks for, derived once per question."""

    text: str
    tokens: tuple[str, ...]
    wants_number: bool
    wants_date: bool
    wants_entity: bool
    wants_person: bool
    wants_place: bool
    wants_list: bool
    unit: str
    slot: tuple[str, ...]
    english: bool
    traditional: bool
    # An English question's phrases, each by its Chinese translations and the phrase itself ("ai"):
    # a passage covers a phrase with any one of them.
    concepts: tuple[tuple[str, ...], ...] = ()

    @functools.cached_property
    def asked(self) -> tuple[tuple[str, ...], ...]:
        """What a sentence must hold to cover the question: each of its words, or for an English
        question each of its phrases."""
        return self.concepts or tuple((t,) for t in self.tokens)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, scored as an answer to the question."""

    hit: Hit
    start: int  # chunk-local
    end: int
    text: str
    features: dict[str, float]
    score: float


def profile_question(question: str, search_text: str | None = None) -> QuestionProfile:
    """Return the type cues and tokens of a question; `search_text` (its BM25 query) gives the tokens.

    An English question's BM25 query holds its Chinese translations (`Retriever.keyword_query`), so
    its words can meet the passages' words as a Chinese question's do.
    """
    normalized = textmod.normalize(question)
    wants_date = bool(_DATE_Q.search(normalized))
    wants_number = bool(_NUMBER_Q.search(normalized)) and not wants_date
    return QuestionProfile(
        text=question,
        tokens=tuple(dict.fromkeys(textmod.tokenize(search_text or question))),
        wants_number=wants_number,
        wants_date=wants_date,
        wants_entity=bool(_ENTITY_Q.search(normalized)) and not (wants_number or wants_date),
        wants_person=bool(_PERSON_Q.search(normalized)) and not (wants_number or wants_date),
        wants_place=bool(_PLACE_Q.search(normalized)) and not (wants_number or wants_date),
        wants_list=bool(_LIST_Q.search(normalized)),
        unit=_asked_unit(normalized),
        slot=_asked_slot(question),
        english=textmod.is_english(question),
        traditional=textmod.to_simplified(question) != question,
    )


def searched_profile(question: str, retriever: Retriever) -> QuestionProfile:
    """Return the profile of `question` with the words its BM25 query searched for (an English one's
    Chinese translations included), as every answer path and its calibration see it."""
    profile = profile_question(question, retriever.keyword_query(question))
    translation = retriever.translation(question)
    if translation is None:
        return profile
    concepts = tuple((*group, phrase) for group, phrase in zip(translation.groups, translation.phrases))
    return replace(profile, concepts=concepts + tuple((word,) for word in translation.missing))


class ExtractiveAnswerer:
    """Picks, scores and cites sentences of the retrieved passages."""

    def __init__(self, index: Index, config: AnswerConfig) -> None:
        self.index = index
        self.config = config
        self.weights = {**_DEFAULT_WEIGHTS, **config.weights}

    def candidates(self, profile: QuestionProfile, query_vector: np.ndarray, hits: Sequence[Hit]) -> list[Candidate]:
        """Return every distinct sentence of `hits`, scored, best first."""
        idf = self._idf(profile)
        q_bigrams = textmod.bigrams(profile.text)
        seen: set[tuple[str, int]] = set()
        out: list[Candidate] = []
        for hit in hits:
            position = self.index.chunk_position(hit.chunk.id)
            units = self.index.sentence_units(position)
            sentences = [u for u in units if not (u[0] == 0 and u[1] == len(hit.chunk.text))] or units
            passage_cover = _coverage(profile.asked, idf, _tokens(hit.chunk.text))
            for start, end, vector in sentences:
                key = (hit.chunk.doc_id, hit.chunk.start + start)
                if key in seen:
                    continue
                seen.add(key)
                sentence = hit.chunk.text[start:end]
                if is_instruction(sentence):  # text aimed at an AI model is never quoted as an answer
                    continue
                features = self._features(profile, query_vector, idf, q_bigrams, sentence, vector, passage_cover, hit)
                score = sum(self.weights.get(name, 0.0) * value for name, value in features.items())
                out.append(Candidate(hit, start, end, sentence, features, score))
        out.sort(key=lambda c: -c.score)
        return out

    def _idf(self, profile: QuestionProfile) -> dict[str, float]:
        return {t: self.index.idf(t) for group in profile.asked for t in group}

    def _features(self, profile, query_vector, idf, q_bigrams, sentence, vector, passage_cover, hit) -> dict[str, float]:
        s_bigrams = _bigrams(sentence)
        # e5 cosines crowd into 0.75–0.95; spread them over roughly 0..1.
        dense = (float(np.dot(query_vector, vector)) - 0.8) / 0.1
        return {
            "dense": dense,
            # With no shared words, a question in another language leans on the vectors alone.
            "dense_english": dense if profile.english else 0.0,
            "lexical": _coverage(profile.asked, idf, _tokens(sentence)),
            "passage_lexical": passage_cover,
            "bigram": len(q_bigrams & s_bigrams) / max(1, len(q_bigrams)),
            "cue": _cue(profile, sentence),
            "unit": _unit_match(profile, sentence),
            "slot": _slot_match(profile, sentence),
            "rank": 1.0 / hit.rank,
            "short": 1.0 if len(sentence) < 12 else 0.0,
            # Titles, datelines and photo credits are not statements of fact.
            "heading": 0.0 if _SENTENCE_END.search(sentence) else 1.0,
        }

    def evidence(self, profile: QuestionProfile, ranked: Sequence[Candidate]) -> dict[str, float]:
        """Return the question-level signals of how well the passages cover the question.

        A question in another language than the corpus shares no words with it, so it gets its
        own signals (vectors only); the model weighs each family separately.
        """
        features = dict.fromkeys(EVIDENCE, 0.0)
        if not ranked:
            return features
        best = ranked[0]
        top = ranked[:3]
        if profile.english:
            features.update(en=1.0, en_score=best.score, en_dense=max(c.features["dense"] for c in top),
                            en_lexical=max(c.features["lexical"] for c in ranked), en_unseen=self.unseen(profile))
            return features
        features.update(
            score=best.score,
            lexical=max(c.features["lexical"] for c in ranked),
            dense=best.features["dense"],
            unseen=self.unseen(profile),
            cue=max(c.features["cue"] for c in top),
            unit=max(c.features["unit"] for c in top) if profile.unit else 0.5,
            slot=max(c.features["slot"] for c in top),
        )
        return features

    def unseen(self, profile: QuestionProfile) -> float:
        """Return the IDF-weighted share of the question's words that the corpus never uses.

        For an English question: the share of its phrases that no word of the corpus translates
        ("Wimbledon", "Jupiter"), by CC-CEDICT (`rag.gloss`).
        """
        if profile.english:
            return glossary_for(self.index.keywords).translate(profile.text).unseen
        idf = {t: self.index.idf(t) for t in profile.tokens}
        total = sum(idf.values())
        # Question words the corpus never uses ("院长", "注册资本", "深圳") are what it cannot answer.
        return sum(v for t, v in idf.items() if not self.index.knows(t)) / total if total else 0.0

    def confidence(self, evidence: dict[str, float]) -> float:
        """Return the calibrated probability that the passages answer the question."""
        weights = self.config.abstain_weights or _DEFAULT_ABSTAIN_WEIGHTS
        z = self.config.bias + sum(weights.get(k, 0.0) * v for k, v in evidence.items())
        return 1.0 / (1.0 + math.exp(-z))

    def focus(self, profile: QuestionProfile, cand: Candidate) -> tuple[int, int]:
        """Return the chunk-local span to quote: the whole sentence, or for a long one its best clauses."""
        text = cand.text
        if len(text) <= _FOCUS_CHARS:
            return cand.start, cand.end
        bounds = [0] + [m.end() for m in _CLAUSE_BREAK.finditer(text)] + [len(text)]
        clauses = [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
        idf = self._idf(profile)

        def clause_score(span: tuple[int, int]) -> float:
            part = text[span[0] : span[1]]
            return _coverage(profile.asked, idf, _tokens(part)) + _cue(profile, part) + _unit_match(profile, part)

        best = max(range(len(clauses)), key=lambda i: clause_score(clauses[i]))
        first = last = best
        # Widen around the best clause, the preceding one first: it usually names the subject.
        while True:
            grown = False
            for cand_first, cand_last in ((first - 1, last), (first, last + 1)):
                if 0 <= cand_first and cand_last < len(clauses):
                    if clauses[cand_last][1] - clauses[cand_first][0] <= _FOCUS_CHARS:
                        first, last, grown = cand_first, cand_last, True
                        break
            if not grown:
                break
        start, end = clauses[first][0], clauses[last][1]
        while end > start and (text[end - 1].isspace() or _CLAUSE_BREAK.match(text[end - 1])):
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        return cand.start + start, cand.start + end

    def select(self, profile: QuestionProfile, ranked: list[Candidate]) -> list[Candidate]:
        """Return the one to three sentences that make the answer, best first."""
        budget = self.config.list_max_chars if profile.wants_list else self.config.max_chars
        chosen = [ranked[0]]
        used = len(ranked[0].text)
        for cand in ranked[1:]:
            if len(chosen) >= self.config.max_sentences:
                break
            if cand.score < ranked[0].score - _SECOND_SENTENCE_MARGIN:
                break
            if used + len(cand.text) > budget or _same_text(cand.text, chosen):
                continue
            chosen.append(cand)
            used += len(cand.text)
        return chosen


_DEFAULT_WEIGHTS = {
    "dense": 0.6,
    "dense_english": 0.6,
    "heading": -1.5,
    "lexical": 1.6,
    "passage_lexical": 0.6,
    "bigram": 0.8,
    "cue": 0.8,
    "unit": 1.0,
    "slot": 0.8,
    "rank": 0.3,
    "short": -1.0,
}
_SECOND_SENTENCE_MARGIN = 0.35
_FOCUS_CHARS = 120  # a longer sentence is quoted from its best clauses only (chosen on eval/calibration.jsonl)
EVIDENCE = ("score", "lexical", "dense", "unseen", "cue", "unit", "slot", "en", "en_score", "en_dense", "en_lexical",
            "en_unseen")
_DEFAULT_ABSTAIN_WEIGHTS = {"score": 1.0, "unseen": -2.0, "en_score": 1.0, "en_unseen": -2.0}


@functools.lru_cache(maxsize=65536)
def _tokens(text: str) -> frozenset[str]:
    """Search tokens of a passage or sentence, memoized: the same passages come back often."""
    return frozenset(textmod.tokenize(text))


@functools.lru_cache(maxsize=65536)
def _words(text: str) -> frozenset[str]:
    """Plain jieba words of a sentence, memoized like `_tokens`."""
    return frozenset(textmod.words(text))


@functools.lru_cache(maxsize=65536)
def _normalized(text: str) -> str:
    return textmod.normalize(text)


@functools.lru_cache(maxsize=65536)
def _bigrams(text: str) -> frozenset[str]:
    return frozenset(textmod.bigrams(text))


def _coverage(asked: Sequence[tuple[str, ...]], idf: dict[str, float], present: frozenset[str]) -> float:
    """Return the IDF-weighted share of the asked words (or phrases) that `present` holds.

    A group weighs as its rarest member and counts once however many of them a sentence holds. An
    English phrase's own spelling is one member, and the corpus seldom uses it ("fund"), so most
    phrases weigh the same, the IDF of an unseen word; one the corpus does use ("ai") weighs less.
    (Weighing a group as its commonest member answered as many English dev questions, citing less
    precisely.)
    """
    weights = [max(idf[t] for t in group) for group in asked]
    total = sum(weights)
    if total <= 0:
        return 0.0
    return sum(w for w, group in zip(weights, asked) if any(t in present for t in group)) / total


_WH_WORDS = frozenset("谁 多少 几 哪天 哪年 哪一年 哪一天 哪里 哪儿 哪家 哪个 哪些 哪所 哪位 哪座 什么 什么时候 何时 多大 多 大 多长 多高 多久 哪".split())


def _asked_slot(question: str) -> tuple[str, ...]:
    """Return the words naming what is asked about the subject: "院长" in "学院的院长是谁",
    "投用" in "是哪天正式投用的". A sentence that lacks them does not answer the question,
    however much of the subject it shares ("副院长" is not "院长")."""
    tokens = textmod.words(question)
    positions = [i for i, w in enumerate(tokens) if w in _WH_WORDS]
    if not positions:
        return ()
    stop = textmod.stopwords()

    def content(seq):
        return [w for w in seq if w not in stop and w not in _WH_WORDS and textmod.cjk_ratio(w) > 0]

    rest = tokens[positions[-1] + 1 :]
    if rest and len(rest[0]) <= 2 and _ASKED_UNIT.search("多少" + rest[0]):
        rest = rest[1:]  # the measure word ("多少万辆") is checked by the unit cue
    after = content(rest)[:3]
    if after:
        return tuple(after)
    return tuple(content(tokens[: positions[0]])[-1:])


def _slot_match(profile: QuestionProfile, sentence: str) -> float:
    if not profile.slot:
        return 0.5
    present = _words(sentence)
    return sum(1 for w in profile.slot if w in present) / len(profile.slot)


def _asked_unit(normalized_question: str) -> str:
    match = _ASKED_UNIT.search(normalized_question)
    return match.group(2) if match else ""


def _unit_match(profile: QuestionProfile, sentence: str) -> float:
    """1 when a number in the sentence carries the measure word the question asks for ("3000台")."""
    if not profile.unit:
        return 0.0
    pattern = r"(\d[\d,.]*|[一二两三四五六七八九十百千]+)\s*(多|余|万|亿|千|百)*\s*" + re.escape(profile.unit)
    return 1.0 if re.search(pattern, _normalized(sentence)) else 0.0


def _cue(profile: QuestionProfile, sentence: str) -> float:
    """1 when the sentence holds the kind of fact asked for, 0 when it lacks it, 0.5 if none is asked."""
    normalized = _normalized(sentence)
    if profile.wants_date:
        return 1.0 if _DATE.search(normalized) else 0.0
    if profile.wants_number:
        return 1.0 if _NUMBER.search(normalized) else 0.0
    if profile.wants_person or profile.wants_place:
        # The answer names someone or somewhere the question does not already name.
        people, places = textmod.names(sentence)
        if profile.wants_person:  # "谁" may ask for an organisation too
            found = people | {m.group() for m in _ENTITY.finditer(normalized)}
        else:
            found = places | {m.group() for m in _PLACE.finditer(normalized)}
        asked = textmod.normalize(profile.text)
        return 1.0 if any(name not in asked for name in found) else 0.0
    if profile.wants_entity:
        return 1.0 if _ENTITY.search(sentence) else 0.0
    return 0.5


def _same_text(text: str, chosen: Sequence[Candidate]) -> bool:
    squashed = textmod.squash(text)
    return any(squashed in textmod.squash(c.text) or textmod.squash(c.text) in squashed for c in chosen)


# What a question asks with, at its end: quoting it in "没有找到…的相关信息" reads badly ("面积呢", "是多少").
_ASKING_TAIL = re.compile(r"(?:(?:是|为|有|在|叫|约|大约)?(?:多少|多大|多高|多长|多久|多远|多重|几[个年月日天家台辆项]?|什么时候|什么|哪里|哪儿|哪些|"
                          r"哪几个|哪个|哪一年|哪年|谁|何时|如何|怎样|怎么样|怎么)|是|有)?"
                          r"(?:[呢吗嘛吧啊呀])?[?？。!！\s]*$")


def asked_topic(question: str) -> str:
    """Return the question without its asking words at the end: "模力高地的面积呢？" → "模力高地的面积"."""
    topic = _ASKING_TAIL.sub("", question.strip())
    topic = topic.rstrip("，,、的")
    return topic if len(topic) >= 2 else question.strip().rstrip("?？。!！")


def abstain_text(profile: QuestionProfile) -> str:
    """Return the "the documents do not say" message in the question's language."""
    if profile.english:
        return _ABSTAIN_EN
    topic = asked_topic(profile.text)
    message = _ABSTAIN_ZH.format(topic=f"“{topic}”" if 0 < len(topic) <= 40 else "该问题")
    if profile.traditional:
        return _to_traditional(message)
    return message


def _to_traditional(text: str) -> str:
    try:
        import opencc

        return opencc.OpenCC("s2t").convert(text)
    except Exception:  # the Simplified message is still correct
        return text


class Answerer:
    """Question in, cited `Answer` out. Cheap to create; shares the loaded index."""

    def __init__(
        self,
        index: Index,
        retrieval: RetrievalConfig = RetrievalConfig(),
        settings: Settings | None = None,
        reader: Reader | None = None,
    ) -> None:
        self.index = index
        self.settings = settings or load_settings()
        self.retrieval = retrieval
        self.extractive = ExtractiveAnswerer(index, self.settings.answer)
        self.reader = reader or Reader()
        answer = self.settings.answer
        self.reading = ReaderAnswerer(self.reader, answer.reader_weights, answer.reader_bias)

    @property
    def default_mode(self) -> AnswerMode:
        """The configured mode (`[answer] mode`); the reader only when its adapter and torch are there."""
        mode = AnswerMode(self.settings.answer.mode)
        if mode is AnswerMode.READER and not self.reader.available:
            return AnswerMode.EXTRACTIVE
        if mode is AnswerMode.LLM and not self.llm_available:
            return AnswerMode.READER if self.reader.available else AnswerMode.EXTRACTIVE
        return mode

    def warm(self) -> None:
        """Load what a first question would otherwise wait for, ~5 s on two cores: the query encoder,
        the reader's weights, jieba's part-of-speech tagger (a "谁" question's names) and the
        glossary an English question is translated with."""
        Retriever(self.index, self.retrieval).run("重庆人工智能")
        textmod.names("重庆人工智能学院")
        glossary_for(self.index.keywords)
        if self.default_mode is AnswerMode.READER:
            self.reader.load()

    @property
    def llm_available(self) -> bool:
        """True when an LLM server is configured."""
        return self.settings.llm.configured

    def run(
        self,
        question: str,
        history: Sequence[str] = (),
        mode: Mode | str | None = None,
        k: int | None = None,
        answer_mode: AnswerMode | str | None = None,
    ) -> Answer:
        """Return the answer to `question` (follow-ups resolved against `history`)."""
        result = None
        for item in self.stream(question, history, mode, k, answer_mode):
            if isinstance(item, Answer):
                result = item
        assert result is not None
        return result

    def stream(
        self,
        question: str,
        history: Sequence[str] = (),
        mode: Mode | str | None = None,
        k: int | None = None,
        answer_mode: AnswerMode | str | None = None,
    ) -> Iterator[str | Answer]:
        """Yield pieces of answer text, then the final `Answer`.

        An LLM's pieces come as it writes them; an offline answer is complete before its first piece,
        so its pieces (one per cited sentence) come at once.
        """
        began = time.perf_counter()
        question = check_question(question)
        answer_mode = AnswerMode(answer_mode or self.default_mode)
        mode = Mode(mode or self.retrieval.mode)
        k = self.retrieval.k if k is None else k
        resolved = resolve_follow_up(question, history, self.index.mentions)
        shape = recognise(resolved)
        if shape.compositional and answer_mode is not AnswerMode.EXTRACTIVE and self.reader.available:
            # Comparisons, several facts, lists and facts of a named year are answered by parts;
            # every other question takes the plain path below, unchanged.
            yield from self._composed(question, resolved, shape, answer_mode, mode, k, began)
            return
        retriever = Retriever(self.index, self.retrieval)
        hits = retriever.run(resolved, mode=mode, k=k)
        timings = dict(retriever.timings)
        if answer_mode is AnswerMode.LLM:
            from rag.llm import DISCARD, LLMAnswerer, LLMUnavailable

            if not self.llm_available:
                note = "no LLM is configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL); extractive answer shown"
            else:
                try:
                    answer = yield from LLMAnswerer(self.index, self.settings.llm).stream(question, resolved, hits, mode)
                    timings.update(answer.timings)
                    timings["total"] = time.perf_counter() - began
                    yield replace(answer, timings=timings)
                    return
                except LLMUnavailable as exc:
                    note = f"the LLM could not answer ({exc}); extractive answer shown"
                    yield DISCARD  # tokens it streamed before failing must not run into the answer below
            answer = self._offline(answer_mode, question, resolved, hits, retriever, mode, timings)
            yield from self._pieces(answer)
            timings["total"] = time.perf_counter() - began
            yield replace(answer, notes=answer.notes + (note,), timings=timings)
            return
        answer = self._offline(answer_mode, question, resolved, hits, retriever, mode, timings)
        yield from self._pieces(answer)
        timings["total"] = time.perf_counter() - began
        yield replace(answer, timings=timings)

    def _composed(self, question, resolved, shape, answer_mode, mode, k, began) -> Iterator[str | Answer]:
        """Yield the pieces and the answer composed of parts; an LLM, when asked for, writes it from them."""
        answer = Composer(self).run(question, resolved, shape, mode, k)
        timings = dict(answer.timings)
        note = None
        if answer_mode is AnswerMode.LLM:
            from rag.llm import DISCARD, LLMAnswerer, LLMUnavailable

            if not self.llm_available:
                note = "no LLM is configured (set RAG_LLM_BASE_URL and RAG_LLM_MODEL); extractive answer shown"
            elif answer.passages:
                try:
                    written = yield from LLMAnswerer(self.index, self.settings.llm).stream(
                        question, resolved, answer.passages, mode, parts=answer.parts)
                    timings.update(written.timings)
                    timings["total"] = time.perf_counter() - began
                    yield replace(written, timings=timings, shape=answer.shape, parts=answer.parts)
                    return
                except LLMUnavailable as exc:
                    note = f"the LLM could not answer ({exc}); extractive answer shown"
                    yield DISCARD
        yield from self._pieces(answer)
        timings["total"] = time.perf_counter() - began
        yield replace(answer, timings=timings, notes=answer.notes + ((note,) if note else ()))

    @staticmethod
    def _pieces(answer: Answer) -> Iterator[str]:
        for piece in re.findall(r".+?\[\d+\]|.+$", answer.text, re.S):
            yield piece

    def _offline(self, answer_mode, question, resolved, hits, retriever, mode, timings) -> Answer:
        """Answer without an LLM: with the reader when asked for (or as the LLM's fallback) and available.

        A question in English goes to the reader only when its adapter learned English questions (over
        Chinese paragraphs); else to the sentence picker: a reader trained on Chinese questions alone held
        the answer for 58 % of the 85 answerable English dev questions, the picker for 74 %
        (`scripts/english_readers.py`).
        """
        english = profile_question(resolved).english
        if (answer_mode is AnswerMode.EXTRACTIVE or not self.reader.available
                or (english and not self.reader.reads_english)):
            return self._extract(question, resolved, hits, retriever, mode, timings)
        return self._read(question, resolved, hits, retriever, mode, timings)

    def _read(self, question, resolved, hits, retriever, mode, timings) -> Answer:
        began = time.perf_counter()
        profile = searched_profile(resolved, retriever)
        display_profile = profile_question(_shown(question, resolved))
        reading = None
        if hits:
            ranked = self.extractive.candidates(profile, retriever.query_vector(resolved), hits)
            windows = reading_windows(self.index, ranked, self.settings.answer.read_sentences)
            timings["windows"] = time.perf_counter() - began
            read_began = time.perf_counter()
            reading = self.reading.read(resolved, windows, self.extractive.unseen(profile))
            timings["read"] = time.perf_counter() - read_began
        confidence = self.reading.confidence(reading.features) if reading else 0.0
        if reading is None or confidence < self.settings.answer.reader_cut(profile.english):
            timings["answer"] = time.perf_counter() - began
            return Answer(question, abstain_text(display_profile), (), tuple(hits), True, AnswerMode.READER, mode,
                          confidence, resolved, timings=timings)
        citation = make_citation(self.index, 1, reading.hit, *reading.quote, answer=reading.answer)
        short = _display(reading.hit.chunk.text[reading.answer[0] : reading.answer[1]])
        quote = _display(citation.sentence)
        if len(short) >= 0.8 * len(quote):
            short = ""  # the answer is the whole sentence: say it once
        text = f"{short}\n{quote}[1]" if short else f"{quote}[1]"
        timings["answer"] = time.perf_counter() - began
        return Answer(question, text, (citation,), tuple(hits), False, AnswerMode.READER, mode, confidence, resolved,
                      timings=timings, short=short)

    def _extract(self, question, resolved, hits, retriever, mode, timings) -> Answer:
        began = time.perf_counter()
        profile = searched_profile(resolved, retriever)
        display_profile = profile_question(_shown(question, resolved))
        if not hits:
            timings["answer"] = time.perf_counter() - began
            return Answer(question, abstain_text(display_profile), (), (), True, AnswerMode.EXTRACTIVE, mode,
                          0.0, resolved, timings=timings)
        query_vector = retriever.query_vector(resolved)
        ranked = self.extractive.candidates(profile, query_vector, hits)
        confidence = self.extractive.confidence(self.extractive.evidence(profile, ranked)) if ranked else 0.0
        if not ranked or confidence < self.settings.answer.picker_cut(profile.english):
            timings["answer"] = time.perf_counter() - began
            return Answer(question, abstain_text(display_profile), (), tuple(hits), True, AnswerMode.EXTRACTIVE,
                          mode, confidence, resolved, timings=timings)
        chosen = self.extractive.select(profile, ranked)
        citations, parts = [], []
        for n, cand in enumerate(chosen, 1):
            start, end = self.extractive.focus(profile, cand)
            citation = make_citation(self.index, n, cand.hit, start, end)
            citations.append(citation)
            parts.append(f"{_display(citation.sentence)}[{n}]")
        timings["answer"] = time.perf_counter() - began
        return Answer(question, "".join(parts), tuple(citations), tuple(hits), False, AnswerMode.EXTRACTIVE, mode,
                      confidence, resolved, timings=timings)


def _shown(question: str, resolved: str) -> str:
    """The question an abstention names: the follow-up as understood ("模力高地的面积呢？"), unless it
    was resolved only by prefixing key terms ("基金 规模 那它呢"), which reads worse than the question."""
    return resolved if resolved and (" " not in resolved or profile_question(resolved).english) else question


def _display(sentence: str) -> str:
    """The sentence as shown in an answer: whitespace repaired, copied otherwise verbatim."""
    return re.sub(r"\s*\n\s*", "", sentence).strip()
