"""Turn a SQuAD-format reading-comprehension file (CMRC 2018, DRCD) into a corpus plus gold questions.

Every paragraph becomes one document; every non-empty question a gold item whose answers are the
file's answers and whose evidence is the sentence of the context that holds the first answer.
The data is only read from where it lives; the documents are written to a folder the caller owns.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from rag.text import sentence_spans

SQUAD_TYPE = "squad"


class SquadError(ValueError):
    """The file is not SQuAD-format JSON."""


@dataclass(frozen=True)
class Paragraph:
    """One context of the file, as the document `file` of the temporary corpus."""

    file: str
    context: str


@dataclass(frozen=True)
class SquadQuestion:
    """One question of the file: answers, and the sentence of its paragraph holding the first one."""

    id: str
    question: str
    answers: tuple[str, ...]
    file: str
    evidence: str
    split: str = "train"  # of its article: "train" or "heldout" (see split_of)


@dataclass(frozen=True)
class SquadSet:
    """The paragraphs and usable questions read from a file, and what was left out."""

    source: Path
    paragraphs: tuple[Paragraph, ...]
    questions: tuple[SquadQuestion, ...]
    empty_questions: int  # blank question strings, skipped
    unlocated: int  # no answer text found in the context, skipped
    total_paragraphs: int  # in the whole file, before any limit


def load_squad(path: Path, limit: int | None = None, questions: Path | None = None) -> SquadSet:
    """Return the paragraphs (the first `limit` of them, in file order) and their questions.

    `questions`: another SQuAD-format file whose questions (matched by id) are asked instead, over
    this file's paragraphs and answers (XQuAD's English questions over its Chinese paragraphs);
    a question it lacks is skipped as empty.
    """
    path = Path(path)
    asked = questions_by_id(Path(questions)) if questions is not None else None
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        articles = data["data"]
        contexts = [p for article in articles for p in article["paragraphs"]]
        splits = [split_of(str(article.get("title", n))) for n, article in enumerate(articles)
                  for _ in article["paragraphs"]]
    except FileNotFoundError:
        raise FileNotFoundError(f"SQuAD file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SquadError(f"{path} is not JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise SquadError(f"{path} is not SQuAD format: expected {{'data': [{{'paragraphs': [...]}}]}} ({exc!r})") from exc

    paragraphs, questions = [], []
    files: dict[str, str] = {}  # context -> its file
    empty = unlocated = 0
    width = max(5, len(str(len(contexts))))
    for n, raw in enumerate(contexts[:limit] if limit else contexts, 1):
        try:
            context, qas = raw["context"], raw.get("qas", [])
        except (KeyError, TypeError) as exc:
            raise SquadError(f"{path}: paragraph {n} has no context ({exc!r})") from exc
        if not isinstance(context, str) or not context.strip():
            continue  # nothing to index, and its questions cannot be answered from it
        if context in files:  # a repeated paragraph is one document: its questions ask the first copy
            name = files[context]
        else:
            name = files[context] = f"p{n:0{width}d}.txt"  # zero-padded so the folder lists in file order
            paragraphs.append(Paragraph(name, context))
        for m, qa in enumerate(qas, 1):
            raw = qa.get("question") if asked is None else asked.get(str(qa.get("id")))
            question = str(raw or "").strip()
            if not question:
                empty += 1
                continue
            answers = tuple(dict.fromkeys(str(a["text"]) for a in qa.get("answers", []) if str(a.get("text", "")).strip()))
            first = next(iter(qa.get("answers", [])), None)
            evidence = _answer_sentence(context, str(first["text"]), first.get("answer_start", -1)) if first else None
            if not answers or evidence is None:
                unlocated += 1
                continue
            questions.append(SquadQuestion(str(qa.get("id") or f"{name}-{m}"), question, answers, name, evidence,
                                           splits[n - 1]))
    return SquadSet(path, tuple(paragraphs), tuple(questions), empty, unlocated, len(contexts))


def questions_by_id(path: Path) -> dict[str, str]:
    """Return the questions of a SQuAD-format file by id."""
    try:
        with open(path, encoding="utf-8") as f:
            articles = json.load(f)["data"]
        return {str(qa.get("id")): str(qa.get("question") or "") for article in articles
                for paragraph in article["paragraphs"] for qa in paragraph.get("qas", [])}
    except FileNotFoundError:
        raise FileNotFoundError(f"SQuAD file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SquadError(f"{path} is not JSON ({exc})") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise SquadError(f"{path} is not SQuAD format ({exc!r})") from exc


def write_corpus(squad: SquadSet, folder: Path) -> Path:
    """Write every paragraph of `squad` as a UTF-8 .txt file into `folder`; return the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for paragraph in squad.paragraphs:
        (folder / paragraph.file).write_text(paragraph.context, encoding="utf-8")
    return folder


def locate_answer(context: str, answer: str, start) -> int | None:
    """Return where `answer` starts in `context`: at `start` when it is there, else its nearest occurrence."""
    if not answer:
        return None
    if isinstance(start, int) and context[start : start + len(answer)] == answer:
        return start
    # A few CMRC offsets are off by some characters: take the occurrence nearest the stated one.
    found = list(_occurrences(context, answer))
    if not found:
        return None
    return min(found, key=lambda i: abs(i - (start if isinstance(start, int) else 0)))


def split_of(article_title: str) -> str:
    """Return "heldout" for one article in five (by a hash of its title), else "train".

    The reader trains on "train" articles only; evaluation reports on "heldout" ones. Splitting by
    article keeps every paragraph of an article on one side.
    """
    digest = int(hashlib.sha1(article_title.encode("utf-8")).hexdigest(), 16)
    return "heldout" if digest % 5 == 0 else "train"


def _answer_sentence(context: str, answer: str, start: int) -> str | None:
    """Return the sentence of `context` containing the answer at `start` (or its nearest occurrence)."""
    start = locate_answer(context, answer, start)
    if start is None:
        return None
    for s, e in sentence_spans(context):
        if s <= start < e:
            # An answer running past the sentence end keeps the sentences it spans.
            end = max(e, start + len(answer))
            return context[s:end].strip()
    return None


def _occurrences(text: str, needle: str):
    i = text.find(needle)
    while i >= 0:
        yield i
        i = text.find(needle, i + 1)
