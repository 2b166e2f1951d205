"""Chinese-specific text handling, in one place: matching normalization, tokenization, sentences.

Everything that is *matched* (BM25 tokens, answer strings, evidence) goes through `normalize`;
users always see the original text.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

_WHITESPACE = re.compile(r"\s+")
# Sentence ends: terminal punctuation, optionally followed by closing quotes/brackets.
_SENTENCE_END = re.compile(r"[。！？!?；;…]+[”’」』）)\]】]*|\n+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN_KEEP = re.compile(r"[\w\u3400-\u9fff]")


@functools.lru_cache(maxsize=1)
def _t2s():
    try:
        import opencc
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise RuntimeError("OpenCC is missing: pip install opencc") from exc
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Return `text` converted from Traditional to Simplified characters (length-preserving)."""
    if not text:
        return text
    converted = _t2s().convert(text)
    # t2s is character-for-character on nearly all input; when a phrase rule changes the length,
    # fall back to per-character conversion so offsets computed on either side stay valid.
    if len(converted) != len(text):
        converted = "".join(_t2s().convert(ch) or ch for ch in text)
        if len(converted) != len(text):
            return text
    return converted


def normalize(text: str) -> str:
    """Return the matching form of `text`: NFKC, Traditional→Simplified, lower case."""
    return to_simplified(unicodedata.normalize("NFKC", text)).lower()


def squash(text: str) -> str:
    """Return the matching form of `text` with all whitespace removed (for substring tests)."""
    return _WHITESPACE.sub("", normalize(text))


def is_cjk(ch: str) -> bool:
    """Return True when `ch` is a CJK ideograph."""
    return bool(_CJK.match(ch))


def cjk_ratio(text: str) -> float:
    """Return the share of CJK ideographs among the non-space characters of `text`."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    return sum(1 for c in chars if is_cjk(c)) / len(chars)


def sentence_spans(text: str) -> Iterator[tuple[int, int]]:
    """Yield (start, end) spans of the sentences of `text`, whitespace trimmed, none empty."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        yield from _trimmed(text, start, end)
        start = end
    yield from _trimmed(text, start, len(text))


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        yield start, end


# --- tokenization --------------------------------------------------------------------------

_STOPWORDS = frozenset(
    """
    的 了 和 与 及 或 是 在 有 为 对 以 将 把 被 从 到 由 向 于 等 等等 也 都 而 并 且 就 还 又 再 更 最
    这 那 其 之 此 该 各 每 个 些 我 你 他 她 它 们 我们 你们 他们 它们 自己 什么 怎么 怎样 如何 为什么 哪 哪些
    哪个 哪里 哪儿 哪家 哪年 哪天 几 多少 多 吗 呢 吧 啊 呀 么 嘛 着 过 地 得 所 要 会 能 可以 可 让 给 使 用
    请问 请 问 一下 告诉 知道 是否 是不是 有没有 没有 不 没 很 非常 已经 已 正在 目前 现在 关于 根据 通过 进行
    一个 一种 一些 这个 那个 这些 那些 以及 还有 如果 因为 所以 但是 但 然后 其中 之一 方面 情况 相关 主要
    呢 么 吗 什么样 哪位 谁 何 何时 何地 时候 什么时候 多大 多长 多久 几个 几家 几项
    a an the of to in on for and or is are was were be been what which who whom when where why how
    do does did with by at from as that this these those it its into about than then there their
    """.split()
)


def is_english(text: str) -> bool:
    """True when most of `text`'s non-space characters are Latin letters (an English question)."""
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and sum(1 for c in chars if c.isascii() and c.isalpha()) > 0.5 * len(chars)


def stopwords() -> frozenset[str]:
    """Return the stopword set applied to normalized tokens."""
    return _STOPWORDS


@functools.lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise RuntimeError("jieba is missing: pip install jieba") from exc
    import logging

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


_TERM_FREQ = 20000


def add_words(words: list[str]) -> None:
    """Teach the tokenizer domain terms so they stay whole (e.g. 模力高地, 算力券); a known term is skipped.

    jieba's add_word adds the frequency to its total each time, even for a word it has: every build and
    load re-teaching the same terms made the total grow and the cut drift within a process (50 rounds
    of the seeds' terms: 亮|起 became 亮起, 数万人 and 国际机场 one token), so a long-running chat
    tokenized questions unlike its index, and the two backends' BM25 scores differed in the test session.
    """
    tokenizer = _jieba()
    for word in words:
        word = normalize(word).strip()
        if word and tokenizer.FREQ.get(word) != _TERM_FREQ:
            tokenizer.add_word(word, freq=_TERM_FREQ)


@functools.lru_cache(maxsize=1)
def _tagger():
    import jieba.posseg

    return jieba.posseg.POSTokenizer(_jieba())


@functools.lru_cache(maxsize=65536)
def names(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """Return the (person names, place names) jieba's part-of-speech tagger finds in `text`."""
    people, places = set(), set()
    for word, flag in _tagger().lcut(normalize(text)):
        if flag == "nr" and len(word) >= 2:
            people.add(word)
        elif flag == "ns" and len(word) >= 2:
            places.add(word)
    return frozenset(people), frozenset(places)


def tagged_words(text: str) -> list[tuple[str, str]]:
    """Return (word, part-of-speech flag) pairs of the normalized `text` (jieba's flags: n, v, x…)."""
    return [(w, f) for w, f in _tagger().lcut(normalize(text))]


def spelled_words(text: str) -> list[str]:
    """Return jieba's words of `text` as spelled in it (segmented on the normalized form, so Traditional
    stays Traditional); when NFKC changes the length, the normalized words."""
    normalized = normalize(text)
    words = _jieba().lcut(normalized)
    if len(normalized) != len(text):
        return words
    out, at = [], 0
    for word in words:
        out.append(text[at : at + len(word)])
        at += len(word)
    return out


def words(text: str) -> list[str]:
    """Return jieba words of the normalized `text`, spaces dropped, stopwords kept."""
    return [w for w in _jieba().lcut(normalize(text)) if w.strip()]


def tokenize(text: str) -> list[str]:
    """Return the search tokens of `text`: normalized jieba words without stopwords or punctuation.

    Search mode also emits the words inside compounds ("产业基金" → 产业, 基金, 产业基金), so a
    question's shorter word still meets the document's longer one.
    """
    tokens = _jieba().lcut_for_search(normalize(text))
    return [w for w in tokens if w.strip() and w not in _STOPWORDS and _TOKEN_KEEP.search(w)]


def bigrams(text: str) -> set[str]:
    """Return the set of character bigrams of the squashed `text` (punctuation dropped)."""
    chars = [c for c in squash(text) if _TOKEN_KEEP.match(c)]
    return {a + b for a, b in zip(chars, chars[1:])}


def read_wordlist(path: Path) -> list[str]:
    """Return the non-empty, non-comment lines of a word-list file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
