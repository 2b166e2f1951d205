"""Score answers composed of parts on eval/compositional.jsonl: every part found and cited to its own
sentence, the right winner or difference, and a decline (never another year's figure) where a part is absent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag import text as textmod
from rag.types import Answer, Shape

DEFAULT_SET = Path("eval") / "compositional.jsonl"
SHAPES = tuple(s.value for s in Shape if s is not Shape.PLAIN)


@dataclass(frozen=True)
class GoldPart:
    """A part the answer must hold: its subject, accepted short answers, and the sentence it comes from."""

    subject: str
    answers: tuple[str, ...]
    evidence: str


@dataclass(frozen=True)
class GoldQuestion:
    """One question of the set."""

    id: str
    question: str
    shape: Shape
    parts: tuple[GoldPart, ...]
    head: tuple[str, ...] = ()  # words the composed first line must hold ("长安数智工厂更多", "多149.2万辆")
    answerable: bool = True  # False: a part (or, for a time-qualified fact, the asked year's figure) is absent
    forbidden: tuple[str, ...] = ()  # figures that must not be given (another year's, a target)
    missing: tuple[str, ...] = ()  # the absent parts' subjects


@dataclass(frozen=True)
class QuestionScore:
    """How one answer fared."""

    id: str
    shape: str
    recognised: bool  # the question's shape was recognised
    parts_found: int  # gold parts whose short answer the answer holds and cites to their sentence
    parts_total: int
    winner: bool  # the composed line holds every expected word (vacuous when none is expected)
    correct: bool  # answered with every part and the right winner, or declined as it should
    one_sentence: bool  # two parts cite one sentence that does not hold both figures
    forbidden: bool  # a forbidden figure was given
    seconds: float
    text: str


@dataclass
class CompositionalReport:
    """Scores of a run, and the metrics over them."""

    scores: list[QuestionScore] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        """Return the gated figures: complete (the share correct), and per shape, parts recall, recognition,
        one_sentence and forbidden (counts)."""
        s = self.scores
        n = max(1, len(s))
        out = {
            "complete": round(sum(x.correct for x in s) / n, 3),
            "parts_recall": round(sum(x.parts_found for x in s) / max(1, sum(x.parts_total for x in s)), 3),
            "recognised": round(sum(x.recognised for x in s) / n, 3),
            "one_sentence": sum(x.one_sentence for x in s),
            "forbidden": sum(x.forbidden for x in s),
            "questions": len(s),
        }
        for shape in SHAPES:
            of = [x for x in s if x.shape == shape]
            if of:
                out[f"complete_{shape}"] = round(sum(x.correct for x in of) / len(of), 3)
        declines = [x for x in s if x.id in self._unanswerable]
        if declines:
            out["declined_right"] = round(sum(x.correct for x in declines) / len(declines), 3)
        return out

    _unanswerable: set = field(default_factory=set)


def load_set(path: Path = DEFAULT_SET) -> list[GoldQuestion]:
    """Return the questions of a compositional set; raise ValueError naming the line of a malformed one."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            parts = tuple(GoldPart(p["subject"], tuple(p["answers"]), p["evidence"]) for p in d.get("parts", ()))
            out.append(GoldQuestion(d["id"], d["question"], Shape(d["shape"]), parts, tuple(d.get("head", ())),
                                    bool(d.get("answerable", True)), tuple(d.get("forbidden", ())),
                                    tuple(d.get("missing", ()))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a compositional question ({exc})") from exc
    return out


def score_answer(gold: GoldQuestion, answer: Answer, seconds: float = 0.0) -> QuestionScore:
    """Return the score of `answer` to `gold`."""
    sq = textmod.squash
    first_line = sq(answer.text.split("\n", 1)[0])
    found = 0
    for part in gold.parts:
        if _part_found(part, answer, list_shape=gold.shape is Shape.LIST):
            found += 1
    winner = all(sq(w) in first_line for w in gold.head)
    forbidden = any(sq(f) in sq(answer.text) for f in gold.forbidden)
    one_sentence = _one_sentence(answer)
    if gold.answerable:
        correct = found == len(gold.parts) and winner and not forbidden and not one_sentence and not answer.abstained
    elif gold.shape is Shape.QUALIFIED or not gold.parts:
        correct = not forbidden and (answer.abstained or "没有找到" in answer.text or "无法" in first_line)
    else:  # one part absent: no winner claimed, the absence said
        claims = any(f"更{a}" in first_line for a in "多少高低大小早晚快慢长短强弱") and "无法" not in first_line
        correct = not forbidden and not claims and ("没有找到" in answer.text or answer.abstained) and not one_sentence
    return QuestionScore(gold.id, gold.shape.value, answer.shape is gold.shape, found if gold.answerable else 0,
                         len(gold.parts) if gold.answerable else 0, winner, correct, one_sentence, forbidden,
                         seconds, answer.text)


def _part_found(part: GoldPart, answer: Answer, list_shape: bool) -> bool:
    """True when a part of the answer gives one of `part`'s answers, cited to the evidence's sentence."""
    sq = textmod.squash
    evidence = sq(part.evidence)
    for given in answer.parts:
        if given.citation is None or not given.short:
            continue
        short = sq(given.short)
        if not any(sq(a) in short or (short and short in sq(a) and len(short) >= 0.6 * len(sq(a))) for a in part.answers):
            continue
        sentence = sq(given.citation.sentence)
        if evidence in sentence or sentence in evidence or (list_shape and any(sq(a) in sentence for a in part.answers)):
            return True
    return False


def _one_sentence(answer: Answer) -> bool:
    """True when two parts cite one sentence and that sentence lacks one of their figures."""
    sq = textmod.squash
    cited = [p for p in answer.parts if p.citation is not None]
    for i, a in enumerate(cited):
        for b in cited[i + 1 :]:
            if (a.citation.doc_id, a.citation.start) == (b.citation.doc_id, b.citation.start):
                sentence = sq(a.citation.sentence)
                if sq(a.short) not in sentence or sq(b.short) not in sentence or sq(a.short) == sq(b.short):
                    return True
    return False


def run(answer: Callable[[str], Answer], questions: list[GoldQuestion],
        progress: Callable[[str, int, int], None] | None = None) -> CompositionalReport:
    """Return the report of answering every question with `answer` (question -> Answer)."""
    report = CompositionalReport(_unanswerable={q.id for q in questions if not q.answerable})
    for done, gold in enumerate(questions, 1):
        began = time.perf_counter()
        result = answer(gold.question)
        report.scores.append(score_answer(gold, result, time.perf_counter() - began))
        if progress:
            progress("compositional", done, len(questions))
    return report


def format_report(report: CompositionalReport, questions: list[GoldQuestion]) -> str:
    """Return the Markdown summary: the metrics, then one line per question that is not correct."""
    m = report.metrics
    lines = ["# Compositional questions — eval/compositional.jsonl", "",
             f"{m['questions']} questions · reader answers, hybrid retrieval", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m.items() if k != "questions"]
    lines += ["", "complete: answered with every part (short answer cited to its own sentence) and the right "
              "winner, or declined where a part or the asked year is absent; parts_recall: gold parts found and cited; "
              "recognised: shape recognised; one_sentence: answers whose two parts cite one sentence lacking a "
              "figure; forbidden: answers giving another year's figure or a target.", "", "## Misses", ""]
    by_id = {q.id: q for q in questions}
    for s in report.scores:
        if not s.correct:
            first = s.text.split("\n", 1)[0][:90]
            lines.append(f"- {s.id} ({s.shape}{'' if s.recognised else ', not recognised'}) "
                         f"{by_id[s.id].question} → {first}")
    seconds = [s.seconds for s in report.scores]
    lines += ["", f"mean {sum(seconds) / max(1, len(seconds)):.2f} s per question on a shared CPU"]
    return "\n".join(lines) + "\n"
