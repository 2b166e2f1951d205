"""Find the passages for a question: BM25, dense, or their reciprocal-rank fusion."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag import text as textmod
from rag.gloss import Translation, glossary_for
from rag.index import Index, embedding_text
from rag.types import Hit, Mode

MAX_QUESTION_CHARS = 2000
_UNITS_PER_CHUNK = 8  # a chunk holds about this many embedded units (itself + its sentences)


class QuestionError(ValueError):
    """The question cannot be asked as given (empty, too long); `str()` in English, `chinese` for the page."""

    def __init__(self, english: str, chinese: str) -> None:
        super().__init__(english)
        self.chinese = chinese


@dataclass(frozen=True)
class RetrievalConfig:
    """Retrieval settings: mode, results returned, candidates per retriever, and the RRF constant."""

    mode: Mode = Mode.HYBRID
    k: int = 5
    candidates: int = 30
    rrf_k: int = 60
    gloss_english: bool = True  # add an English question's CC-CEDICT translations to its BM25 and dense queries

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        if self.candidates < self.k:
            object.__setattr__(self, "candidates", self.k)
        if self.rrf_k <= 0:
            raise ValueError(f"rrf_k must be positive, got {self.rrf_k}")


def check_question(question: str) -> str:
    """Return the stripped question; raise QuestionError when it is empty or too long."""
    if question is None or not str(question).strip():
        raise QuestionError("the question is empty: type a question about the documents", "问题是空的，请输入关于文档的问题")
    question = str(question).strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}: shorten it",
            f"问题有 {len(question)} 个字符，上限是 {MAX_QUESTION_CHARS}，请缩短后再问",
        )
    return question


class Retriever:
    """Searches one loaded index; cheap to create, all heavy state lives in the index."""

    def __init__(self, index: Index, config: RetrievalConfig = RetrievalConfig()) -> None:
        self.index = index
        self.config = config
        self.timings: dict[str, float] = {}
        self._last_query: str | None = None
        self._last_vector: np.ndarray | None = None
        self._translations: dict[str, Translation] = {}

    def run(self, question: str, mode: Mode | str | None = None, k: int | None = None) -> list[Hit]:
        """Return the top-k hits for `question`, best first."""
        question = check_question(question)
        mode = Mode(mode or self.config.mode)
        k = self.config.k if k is None else k
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        n = max(self.config.candidates, k)
        self.timings = {}
        dense = self._dense(question, n) if mode in (Mode.DENSE, Mode.HYBRID) else []
        sparse = self._bm25(question, n) if mode in (Mode.BM25, Mode.HYBRID) else []
        began = time.perf_counter()
        if mode is Mode.DENSE:
            ranked = [(i, s) for i, s in dense]
        elif mode is Mode.BM25:
            ranked = [(i, s) for i, s in sparse]
        else:
            ranked = rrf([[i for i, _ in dense], [i for i, _ in sparse]], self.config.rrf_k)
        dense_rank = {i: r for r, (i, _) in enumerate(dense, 1)}
        bm25_rank = {i: r for r, (i, _) in enumerate(sparse, 1)}
        hits = [
            Hit(
                chunk=self.index.chunks[i],
                score=float(score),
                rank=rank,
                dense_rank=dense_rank.get(i),
                bm25_rank=bm25_rank.get(i),
            )
            for rank, (i, score) in enumerate(ranked[:k], 1)
        ]
        self.timings["fusion"] = time.perf_counter() - began
        return hits

    def _dense(self, question: str, n: int) -> list[tuple[int, float]]:
        began = time.perf_counter()
        # An English question is searched with its Chinese translations, as BM25 searches it: e5 alone
        # carries it only part of the way (English dev questions: R@5 0.85 -> 0.92 with them).
        query = self.keyword_query(question)
        vector = self.query_vector(question) if query == question else self._embed(query)
        self.timings["embed"] = time.perf_counter() - began
        began = time.perf_counter()
        # Units are chunks and their sentences; a chunk scores as its best unit.
        scores, ids = self.index.dense.search(vector[None, :], n * _UNITS_PER_CHUNK)
        best: dict[int, float] = {}
        for unit, score in zip(ids[0], scores[0]):
            if unit < 0:
                continue
            chunk = int(self.index.units[unit][0])
            if chunk not in best:
                best[chunk] = float(score)
        self.timings["dense"] = time.perf_counter() - began
        return sorted(best.items(), key=lambda pair: -pair[1])[:n]

    def _bm25(self, question: str, n: int) -> list[tuple[int, float]]:
        began = time.perf_counter()
        hits = self.index.keywords.search(self.keyword_query(question), n)
        self.timings["bm25"] = time.perf_counter() - began
        return hits

    def keyword_query(self, question: str) -> str:
        """Return the search text of `question` (BM25 and dense): an English one gains the Chinese words it
        translates to."""
        translation = self.translation(question)
        return " ".join([question, *translation.terms]) if translation else question

    def translation(self, question: str) -> Translation | None:
        """Return an English question's CC-CEDICT translation; None for a question searched as asked."""
        if not (self.config.gloss_english and textmod.is_english(question)):
            return None
        # BM25, the dense query and the answerer's profile all ask for it: translate once per question.
        if question not in self._translations:
            self._translations[question] = glossary_for(self.index.keywords).translate(question)
        return self._translations[question]

    def query_vector(self, question: str) -> np.ndarray:
        """Return the unit query vector of `question`, cached for the answerer's reuse."""
        if self._last_query != question:
            self._last_vector = self._embed(question)
            self._last_query = question
        return self._last_vector

    def _embed(self, text: str) -> np.ndarray:
        return self.index.embedder.embed_queries([embedding_text(text)])[0]


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Return items fused by reciprocal rank, (item, score) best first; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])


# --- follow-up questions ----------------------------------------------------------------------

# Whole words only: "其" in 米其林 or "该" in 应该 is no reference to the previous turn.
_ANAPHORA = frozenset("那 那么 它 它们 它的 那它 那它的 其 其中 这 这个 这些 这家 这项 这里 该 该项 那个 那些 那家 那里 此 此项 上述 以上".split())
_ENGLISH_ANAPHORA = re.compile(r"\b(it|its|they|their|this|that|these|those|he|she|his|her)\b", re.I)
_SHORT_FOLLOW_UP = 8
# What a question says before it names the asked attribute (请问, 那么…): never part of a topic.
_LEAD_INS = frozenset("请问 请 问 那 那么 关于 对于".split())
# Pronouns standing for the topic itself ("它的面积" → "模力高地的面积"); demonstratives come
# before a noun ("这家企业"), so the topic is put in front of them ("赛力斯这家企业").
_PRONOUNS = {"它": "", "它们": "", "它的": "的", "那它": "", "那它的": "的", "其": "的", "其中": "中",
             "这里": "", "那里": ""}
# Nouns that name what is asked about a thing, not the thing: "重庆人工智能产业基金规模有多大" is about
# the fund; its follow-up "那它是什么时候签约的？" carries the fund, not 规模.
_ATTRIBUTES = frozenset("""
    规模 面积 空间 时间 日期 年份 时候 地点 位置 地址 数量 人数 金额 总额 投资 产值 营收 营业 收入 目标 增长 增速
    增幅 占比 比例 比重 价格 成本 费用 作用 特点 特色 意义 原因 目的 内容 名称 名字 负责人 期限 时长 速度 航速 容量
    功能 用途 优势 进展 成效 效果 定位 重点 领域 范围 条件 要求 标准 额度 上限 下限 措施 总部 主体 成员
""".split())
_QUOTED = re.compile(r"[“「『\"]([^“”「」『』\"]{2,24})[”」』\"]")
_NOUNISH = ("n", "j", "eng")
_MODIFIERS = ("a", "b", "vn", "an")
_WORD = re.compile(r"[\w\u3400-\u9fff]")
_TOPIC_WORDS = 12  # a topic longer than this many words is a clause, not a name


def question_topic(question: str, mentioned: Callable[[str], bool] | None = None) -> str:
    """Return what a question is about (its quoted name, else its leading noun phrase), or "".

    "“模力高地”什么时候正式投用？" → 模力高地; "重庆人工智能产业基金规模有多大" → 重庆人工智能产业基金:
    the asked attribute (规模) and the question words are left out. `mentioned` (phrase → does the
    knowledge base hold it) lets a name the tagger splits stay whole: jieba tags 通用 a verb, which
    would cut "重庆通用人工智能产业基金" to 重庆.
    """
    quoted = _QUOTED.search(question)
    if quoted:
        return quoted.group(1).strip()
    words = textmod.spelled_words(question)
    tags = dict(textmod.tagged_words(question))
    tagged = _tagged_topic(words, tags)
    if mentioned is None:
        return tagged
    named = _mentioned_topic(words, tags, mentioned)
    return named if len(named) > len(tagged) else tagged


def _mentioned_topic(words: list[str], tags: dict[str, str], mentioned: Callable[[str], bool]) -> str:
    """Return the longest leading run of words the knowledge base holds that ends where the noun phrase ends.

    The run must not stop inside a name (the next word is no noun) nor end on 的 or a stopword, so
    "重庆人工智能" is never the topic of a question about 重庆人工智能学院, even when the documents say
    重庆人工智能 and never name the college.
    """
    norms = [textmod.normalize(w) for w in words]
    first = 0
    while first < len(norms) and norms[first] in _LEAD_INS:
        first += 1
    for end in range(min(len(words), first + _TOPIC_WORDS), first, -1):
        last, following = norms[end - 1], norms[end] if end < len(norms) else ""
        if last == "的" or last in textmod.stopwords() or last in _ATTRIBUTES or not _WORD.search(last):
            continue
        if following and _WORD.search(following) and _nounish(following, tags):
            continue
        phrase = "".join(words[first:end]).strip()
        if len(phrase) >= 2 and mentioned(phrase):
            return phrase
    return ""


def _nounish(norm: str, tags: dict[str, str]) -> bool:
    flag = tags.get(norm, "x")
    if norm in _ATTRIBUTES or norm == "的":
        return False
    return flag.startswith(_NOUNISH) or flag in ("vn", "nz") or (flag == "x" and textmod.cjk_ratio(norm) == 1.0
                                                                and norm not in textmod.stopwords())


def _tagged_topic(words: list[str], tags: dict[str, str]) -> str:
    """Return the leading noun phrase by part-of-speech tags alone."""
    parts: list[str] = []
    for i, word in enumerate(words):
        norm = textmod.normalize(word)
        if not parts and norm in _LEAD_INS:
            continue
        flag = tags.get(norm, "x")
        nounish = flag.startswith(_NOUNISH) or (flag in ("x", "m") and norm not in textmod.stopwords()
                                                and textmod.cjk_ratio(norm) == 1.0)
        if parts and i + 1 < len(words) and (norm == "的" or tags.get(norm, "x") in _MODIFIERS):
            nxt = textmod.normalize(words[i + 1])
            if tags.get(nxt, "x").startswith(_NOUNISH) and nxt not in _ATTRIBUTES:
                parts.append(word)  # "赛力斯的协同平台", "重庆通用人工智能产业基金": a noun follows
                continue
        if not nounish or norm in _ATTRIBUTES or norm in textmod.stopwords() or not _WORD.search(norm):
            break
        parts.append(word)
    while parts and textmod.normalize(parts[-1]) == "的":
        parts.pop()
    topic = "".join(parts).strip()
    return topic if len(topic) >= 2 else ""


def is_follow_up(question: str) -> bool:
    """True when `question` leans on the conversation: a pronoun, or too short to stand alone."""
    question = question.strip()
    normalized = textmod.normalize(question)
    return (
        any(w in _ANAPHORA for w in textmod.words(question))
        or _ENGLISH_ANAPHORA.search(question) is not None
        or len(textmod.tokenize(question)) <= 1
        or (len(question) <= _SHORT_FOLLOW_UP and normalized.endswith(("呢", "呢？", "呢?")))
    )


def resolve_follow_up(question: str, history: Sequence[str], mentioned: Callable[[str], bool] | None = None) -> str:
    """Return `question` made self-contained using the previous questions (no LLM).

    An elliptical or anaphoric question gets the conversation's topic, not the previous question's
    asked attribute: after "“模力高地”什么时候正式投用？", "那它的面积呢？" becomes "模力高地的面积呢？".
    Pass the previous questions as they were understood (their resolved forms), so a topic carries on
    over several follow-ups. Without a recognisable topic the previous question's key terms are added.
    `mentioned` tells which phrases the knowledge base holds (see `question_topic`).
    """
    question = question.strip()
    previous = [h.strip() for h in history if h and h.strip()]
    if not previous or not is_follow_up(question):
        return question
    topic = next((t for t in (question_topic(p, mentioned) for p in reversed(previous[-3:])) if t), "")
    if topic:
        return _with_topic(question, topic)
    own = set(textmod.tokenize(question))
    carried: list[str] = []
    for earlier in reversed(previous[-2:]):
        for token in textmod.tokenize(earlier):
            if token not in own and token not in carried and len(token) > 1:
                carried.append(token)
        if carried:
            break
    if not carried:
        return question
    return " ".join(carried) + " " + question


def _with_topic(question: str, topic: str) -> str:
    """Return `question` with its pronoun replaced by `topic`, or `topic` put in front of it."""
    if textmod.squash(topic) in textmod.squash(question):
        return question  # it names the topic already
    words = textmod.spelled_words(question)
    norms = [textmod.normalize(w) for w in words]
    while norms and norms[0] in ("那", "那么", ",", "，", " "):
        words, norms = words[1:], norms[1:]
    rest = "".join(words)
    for i, norm in enumerate(norms):
        if norm in _PRONOUNS:
            return "".join(words[:i]) + topic + _PRONOUNS[norm] + "".join(words[i + 1 :])
        if norm in _ANAPHORA:
            after = norms[i + 1] if i + 1 < len(norms) else ""
            if after and textmod.normalize(topic).endswith(after):  # "这个基金" after a question about a 基金
                return "".join(words[:i]) + topic + "".join(words[i + 2 :])
            return "".join(words[:i]) + topic + "".join(words[i:])
    if not rest:
        return topic
    if textmod.cjk_ratio(rest[:1]) == 0:  # English: "What about its size?" keeps the key terms up front
        return f"{topic} {rest}"
    first = dict(textmod.tagged_words(rest)).get(norms[0], "") if norms else ""
    return topic + ("的" if first.startswith("n") else "") + rest  # "面积呢？" → "模力高地的面积呢？"
