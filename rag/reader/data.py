"""Training examples for the reader, made from SQuAD-format files (CMRC 2018, DRCD).

A positive is a question with a passage holding its answer: the retrieval chunk that holds it (as
the index would cut the paragraph) or the answer's sentence with its neighbours (as the answerer's
reading windows look). These sets have no unanswerable questions, so negatives are made the way the
hard cases look at run time:
- *deleted*: the same passage with the answer's sentence removed (same entity, the fact missing);
- *other*: the chunk of another article that shares the most question bigrams;
- *sibling*: another chunk of the same paragraph that does not contain the answer;
- *read* (given `read`, from `rag.reader.mining`): the windows the answerer itself reads for the
  question, over an index of the training articles, that do not hold the answer;
- *swapped*: the answer's sentences with a question whose asked attribute was swapped for one the
  passage does not hold (校长 -> 副校长, 建成 -> 投产, 2005年 -> 2007年, 最大 -> 最小): the entity is
  there, the fact asked is not: the tempting unanswerable question users most often get wrong answers to;
- *nearby* (with `nearby=True`): the sentences of the same paragraph that share the most bigrams with
  the question, each with its neighbours, cut as the answerer's reading windows are: the windows a
  question's answer window competes with at run time. Every window carries its question's `group`,
  so a listwise loss can teach the reader to rank a question's windows against each other.
A `Source` says which articles of a file train: by article hash (`rag.evaluation.squad.split_of`, held-out articles
stay unseen), all of them (CMRC 2018 train), or none (a dev set); and may take its questions from
another file with the same ids (XQuAD English questions over the Chinese paragraphs and answers).
Questions and passages are read in Simplified characters (`rag.text.to_simplified` keeps offsets), as
the reader reads at run time: DRCD's Traditional text then teaches the same script as CMRC's.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from rag.chunk import chunk_document
from rag.evaluation.squad import locate_answer, questions_by_id, split_of
from rag.text import bigrams, sentence_spans, to_simplified
from rag.types import Document


@dataclass(frozen=True)
class Example:
    """One training window: question, passage, the answer's character span in it (None: unanswerable)."""

    question: str
    passage: str
    answer: tuple[int, int] | None
    kind: str
    source: str
    group: int = 0  # the question it was made for: windows of one group compete for the answer
    shape: str = "chunk"  # "chunk" (a retrieval chunk) or "sentences" (a sentence with neighbours)


@dataclass(frozen=True)
class _Item:
    question: str
    answers: tuple[str, ...]
    context: str
    start: int
    end: int
    article: int
    paragraph: int


Role = Literal["split", "train", "dev"]


@dataclass(frozen=True)
class Source:
    """A SQuAD-format file and which of its articles train the reader.

    role "split": one article in five is held out (`split_of`); "train": every article trains;
    "dev": none does. `questions`: another file whose question ids match, asked instead of this
    file's questions (XQuAD English questions over the Chinese paragraphs, answered by Chinese spans).
    """

    path: Path
    role: Role = "split"
    questions: Path | None = None

    def __post_init__(self) -> None:
        if self.role not in ("split", "train", "dev"):
            raise ValueError(f"role must be split, train or dev, got {self.role!r}")

    @property
    def name(self) -> str:
        """The source's name in training records and per-file tables."""
        stem = Path(self.path).stem
        return f"{Path(self.questions).stem}@{stem}" if self.questions else stem

    def part_of(self, article_title: str) -> str:
        """Return "train" or "heldout" for an article of this file."""
        if self.role == "split":
            return split_of(article_title)
        return "train" if self.role == "train" else "heldout"

    @classmethod
    def parse(cls, spec: str | Path) -> "Source":
        """Return the source a command-line spec names: FILE, FILE:train, FILE:dev, QUESTIONS@FILE[:role]."""
        if isinstance(spec, Path):
            return cls(spec)
        text, role = spec, "split"
        head, _, tail = spec.rpartition(":")
        if head and tail in ("split", "train", "dev"):
            text, role = head, tail
        questions, _, path = text.rpartition("@")
        return cls(Path(path), role, Path(questions) if questions else None)


def read_items(source: Source | Path, split: str) -> list[_Item]:
    """Return the located question/answer items of the articles of `split` ("train", "heldout" or "all")."""
    source = source if isinstance(source, Source) else Source(Path(source))
    with open(source.path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    asked = questions_by_id(source.questions) if source.questions else None
    items = []
    paragraph_no = 0
    for a_no, article in enumerate(articles):
        if split != "all" and source.part_of(str(article.get("title", a_no))) != split:
            paragraph_no += len(article["paragraphs"])
            continue
        for paragraph in article["paragraphs"]:
            context = to_simplified(paragraph["context"])
            for qa in paragraph.get("qas", []):
                raw = qa.get("question") if asked is None else asked.get(str(qa.get("id")))
                question = to_simplified(str(raw or "").strip())
                answers = [a for a in qa.get("answers", []) if str(a.get("text", "")).strip()]
                if not question or not answers:
                    continue
                first = answers[0]
                start = locate_answer(context, to_simplified(first["text"]), first.get("answer_start"))
                if start is None:
                    continue
                texts = tuple(dict.fromkeys(to_simplified(a["text"]) for a in answers))
                items.append(_Item(question, texts, context, start, start + len(texts[0]), a_no, paragraph_no))
            paragraph_no += 1
    return items


NEARBY_PER_QUESTION = 2


def make_examples(paths: list[Source | Path], split: str = "train", seed: int = 0, limit: int | None = None,
                  nearby: bool = False, read: dict[str, dict[str, list[str]]] | None = None,
                  swaps: bool = False) -> list[Example]:
    """Return shuffled positives and made negatives for the questions of `split` in `paths`.

    `nearby` adds the *nearby* negatives; they draw from a generator of their own, so every other
    example is the same with or without them. `read` adds the *read* negatives: per file stem, per
    question, the windows `rag.reader.mining.read_negatives` found. `swaps` adds the *swapped* negatives,
    from a generator of their own as well.
    """
    rng = random.Random(seed)
    examples: list[Example] = []
    group = 0
    for path in paths:
        spec = path if isinstance(path, Source) else Source(Path(path))
        items = read_items(spec, split)
        if limit:
            items = items[:limit]
        chunks = _paragraph_chunks(items)
        other = _BigramIndex(chunks)
        source = spec.name
        for item in items:
            made = _examples_for(item, chunks, other, rng, source)
            if made and nearby:
                made += _nearby(item, random.Random(f"{seed}:{source}:{group}"), source)
            if made and swaps:
                made += _swapped(item, random.Random(f"{seed}:swap:{source}:{group}"), source)
            if made and read:
                made += [Example(item.question, text, None, "read", source, shape="sentences")
                         for text in read.get(source, {}).get(item.question, ())]
            examples.extend(replace(ex, group=group) for ex in made)
            group += 1
    rng.shuffle(examples)
    return examples


def _nearby(item: _Item, rng: random.Random, source: str) -> list[Example]:
    """Windows around the paragraph's sentences most like the question, none holding the answer."""
    sentences = list(sentence_spans(item.context))
    asked = bigrams(item.question)
    answer_rows = {i for i, (a, b) in enumerate(sentences) if a < item.end and b > item.start}
    ranked = sorted((i for i in range(len(sentences)) if i not in answer_rows),
                    key=lambda i: (-len(asked & bigrams(item.context[slice(*sentences[i])])), i))
    out: list[Example] = []
    for i in ranked:
        if len(out) == NEARBY_PER_QUESTION:
            break
        first, last = max(0, i - rng.randint(0, 1)), min(len(sentences) - 1, i + rng.randint(0, 1))
        rows = set(range(first, last + 1))
        if rows & answer_rows:  # a neighbour may be the answer's sentence: read the sentence alone then
            first = last = i
        text = item.context[sentences[first][0] : sentences[last][1]]
        if len(text) >= 10 and not _mentions(text, item.answers):
            out.append(Example(item.question, text, None, "nearby", source, shape="sentences"))
    return out


# Asked attributes a passage may hold one of without the other; each pair swaps both ways.
SWAPS = (("校长", "副校长"), ("院长", "副院长"), ("主席", "副主席"), ("总统", "副总统"), ("部长", "副部长"),
         ("董事长", "副董事长"), ("总经理", "副总经理"), ("主任", "副主任"), ("市长", "副市长"),
         ("建成", "投产"), ("开工", "竣工"), ("成立", "解散"), ("出生", "去世"), ("开始", "结束"),
         ("最高", "最低"), ("最大", "最小"), ("最早", "最晚"), ("最多", "最少"), ("最长", "最短"),
         ("增加", "减少"), ("上升", "下降"), ("出口", "进口"), ("面积", "人口"), ("首都", "最大城市"),
         ("东部", "西部"), ("南部", "北部"), ("父亲", "母亲"), ("哥哥", "弟弟"), ("姐姐", "妹妹"),
         ("冠军", "亚军"), ("第一", "第二"), ("男性", "女性"), ("上半年", "下半年"))
YEAR = re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?=年)")
SWAP_RATE = 0.5


def _swapped(item: _Item, rng: random.Random, source: str) -> list[Example]:
    """The answer's sentences under a question asking an attribute or year they do not hold."""
    if rng.random() >= SWAP_RATE:
        return []
    s, e = _neighbourhood(item.context, item.start, item.end, rng)
    window = item.context[s:e]
    options = []
    for a, b in SWAPS:
        for have, want in ((a, b), (b, a)):
            # 校长 inside 副校长 is not a 校长: count the asked word where it is not part of its pair.
            if _holds(item.question, have, want) and _holds(window, have, want) and not _holds(window, want, have):
                options.append(_replace_word(item.question, have, want))
    years = set(YEAR.findall(window))
    for year in YEAR.findall(item.question):
        if year in years:
            other = str(int(year) + rng.choice((-3, -2, -1, 1, 2, 3)))
            if other not in window:
                options.append(item.question.replace(year, other))
    if not options:
        return []
    return [Example(rng.choice(options), window, None, "swapped", source, shape="sentences")]


def _holds(text: str, word: str, pair: str) -> bool:
    """Whether `word` occurs in `text` other than inside `pair` (校长 outside 副校长)."""
    if word in pair:
        return text.count(word) > text.count(pair)
    return word in text


def _replace_word(text: str, have: str, want: str) -> str:
    if have in want:  # 校长 -> 副校长: leave a 副校长 already there alone
        return re.sub(f"(?<!{re.escape(want[: want.index(have)])}){re.escape(have)}", want, text)
    return text.replace(have, want)


def _paragraph_chunks(items: list[_Item]) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """Return per paragraph: its article and its chunks' spans, cut exactly as the index cuts documents."""
    out = {}
    for item in items:
        if item.paragraph in out:
            continue
        doc = _document(item.context)
        out[item.paragraph] = (item.article, [(c.start, c.end) for c in chunk_document(doc)], item.context)
    return out


def _document(context: str) -> Document:
    digest = hashlib.sha256(context.encode("utf-8")).hexdigest()
    return Document(id=digest[:12], file="", title="", date=None, sha256=digest, encoding="utf-8",
                    original=context, text=context, offsets=tuple(range(len(context))))


def _examples_for(item: _Item, chunks, other: "_BigramIndex", rng: random.Random, source: str) -> list[Example]:
    _, spans, context = chunks[item.paragraph]
    holding = [(s, e) for s, e in spans if s <= item.start and item.end <= e]
    if not holding:
        return []
    # Both window shapes the reader meets: a retrieval chunk, and sentences around a candidate.
    chunk = rng.choice(holding)
    windows = list(dict.fromkeys([chunk, _neighbourhood(context, item.start, item.end, rng)]))
    out = []
    for s, e in windows:
        shape = "chunk" if (s, e) == chunk else "sentences"
        out.append(Example(item.question, context[s:e], (item.start - s, item.end - s), "answer", source, shape=shape))
        # The answer's sentences cut out of the same window: same subject, the fact missing.
        kept = [(a, b) for a, b in sentence_spans(context[s:e]) if b <= item.start - s or a >= item.end - s]
        deleted = "".join(context[s + a : s + b] for a, b in kept)
        if rng.random() < 0.6 and len(deleted) >= 20 and not _mentions(deleted, item.answers):
            out.append(Example(item.question, deleted, None, "deleted", source, shape=shape))

    siblings = [(a, b) for a, b in spans if not _mentions(context[a:b], item.answers)]
    draw = rng.random()
    if siblings and draw < 0.35:
        a, b = rng.choice(siblings)
        out.append(Example(item.question, context[a:b], None, "sibling", source))
    elif draw < 0.65:  # passages of other articles are easy to reject: fewer of them are enough
        found = other.best(item.question, item.article, item.answers)
        if found is not None:
            out.append(Example(item.question, found, None, "other", source))
    return out


def _neighbourhood(context: str, start: int, end: int, rng: random.Random) -> tuple[int, int]:
    """The answer's sentence with zero to two neighbours on each side, as the answerer's windows are cut."""
    sentences = list(sentence_spans(context))
    at = [i for i, (a, b) in enumerate(sentences) if a < end and b > start]
    if not at:
        return 0, len(context)
    first = max(0, at[0] - rng.randint(0, 2))
    last = min(len(sentences) - 1, at[-1] + rng.randint(0, 2))
    return sentences[first][0], max(sentences[last][1], end)


def _mentions(text: str, answers: tuple[str, ...]) -> bool:
    return any(a in text for a in answers)


class _BigramIndex:
    """Chunks by shared character bigrams: finds the passage of another article that looks most like the question."""

    def __init__(self, chunks) -> None:
        self.texts: list[str] = []
        self.articles: list[int] = []
        postings: dict[str, list[int]] = defaultdict(list)
        for article, spans, context in chunks.values():
            for a, b in spans:
                n = len(self.texts)
                self.texts.append(context[a:b])
                self.articles.append(article)
                for gram in bigrams(context[a:b]):
                    postings[gram].append(n)
        common = max(50, len(self.texts) // 10)  # bigrams in more chunks than this say nothing
        self.postings = {g: p for g, p in postings.items() if len(p) <= common}

    def best(self, question: str, exclude_article: int, answers: tuple[str, ...]) -> str | None:
        """Return the chunk of another article sharing the most bigrams with `question` and holding none of `answers`."""
        counts: Counter[int] = Counter()
        for gram in bigrams(question):
            for n in self.postings.get(gram, ()):
                counts[n] += 1
        for n, _ in counts.most_common(20):
            if self.articles[n] != exclude_article and not _mentions(self.texts[n], answers):
                return self.texts[n]
        return None


def default_sources(benchmarks: Path) -> list[Source]:
    """The reader's training data in `benchmarks`: all of CMRC 2018 train, the training articles of DRCD
    dev and of XQuAD (its Chinese questions, and its English ones over the Chinese paragraphs).
    CMRC 2018 trial trains nothing: it is a dev set, with DRCD's and XQuAD's held-out articles."""
    benchmarks = Path(benchmarks)
    cmrc = [Source(benchmarks / f"cmrc2018_train.part{n}.json", "train") for n in (1, 2, 3)]
    return [*cmrc, Source(benchmarks / "DRCD_dev.json"), Source(benchmarks / "xquad.zh.json"),
            Source(benchmarks / "xquad.zh.json", questions=benchmarks / "xquad.en.json")]


def dev_sources(benchmarks: Path) -> list[Source]:
    """The dev splits no training touches: CMRC 2018 trial, and the held-out articles of DRCD and XQuAD."""
    benchmarks = Path(benchmarks)
    return [Source(benchmarks / "cmrc2018_trial.json", "dev"), Source(benchmarks / "DRCD_dev.json"),
            Source(benchmarks / "xquad.zh.json"), Source(benchmarks / "xquad.zh.json", questions=benchmarks / "xquad.en.json")]
