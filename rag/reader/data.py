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
- *nearby* (with `nearby=True`): the sentences of the same paragraph that share the most bigrams with
  the question, each with its neighbours, cut as the answerer's reading windows are: the windows a
  question's answer window competes with at run time. Every window carries its question's `group`,
  so a listwise loss can teach the reader to rank a question's windows against each other.
Only articles of the requested split are used (`rag.squad.split_of`), so held-out articles stay unseen.
Questions and passages are read in Simplified characters (`rag.text.to_simplified` keeps offsets), as
the reader reads at run time: DRCD's Traditional text then teaches the same script as CMRC's.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

from rag.chunk import chunk_document
from rag.squad import locate_answer, split_of
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


def read_items(path: Path, split: str) -> list[_Item]:
    """Return the located question/answer items of the articles of `split` ("train", "heldout" or "all")."""
    with open(path, encoding="utf-8") as f:
        articles = json.load(f)["data"]
    items = []
    paragraph_no = 0
    for a_no, article in enumerate(articles):
        if split != "all" and split_of(str(article.get("title", a_no))) != split:
            paragraph_no += len(article["paragraphs"])
            continue
        for paragraph in article["paragraphs"]:
            context = to_simplified(paragraph["context"])
            for qa in paragraph.get("qas", []):
                question = to_simplified(str(qa.get("question") or "").strip())
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


def make_examples(paths: list[Path], split: str = "train", seed: int = 0, limit: int | None = None,
                  nearby: bool = False, read: dict[str, dict[str, list[str]]] | None = None) -> list[Example]:
    """Return shuffled positives and made negatives for the questions of `split` in `paths`.

    `nearby` adds the *nearby* negatives; they draw from a generator of their own, so every other
    example is the same with or without them. `read` adds the *read* negatives: per file stem, per
    question, the windows `rag.reader.mining.read_negatives` found.
    """
    rng = random.Random(seed)
    examples: list[Example] = []
    group = 0
    for path in paths:
        items = read_items(Path(path), split)
        if limit:
            items = items[:limit]
        chunks = _paragraph_chunks(items)
        other = _BigramIndex(chunks)
        source = Path(path).stem
        for item in items:
            made = _examples_for(item, chunks, other, rng, source)
            if made and nearby:
                made += _nearby(item, random.Random(f"{seed}:{source}:{group}"), source)
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
