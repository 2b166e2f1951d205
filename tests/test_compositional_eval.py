"""rag/evaluation/compositional.py: the set parses, the scorer scores, and the CI gate on eval/compositional.jsonl."""

import json
from pathlib import Path

import pytest

from rag.evaluation.compositional import DEFAULT_SET, GoldPart, GoldQuestion, load_set, run, score_answer
from rag.types import Answer, AnswerMode, Citation, Mode, Part, Shape

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = ROOT / "eval" / "thresholds.json"


def _citation(n, sentence, start):
    return Citation(n, "d", "f.txt", "t", None, "c", sentence, start, start + len(sentence), start, start + len(sentence))


def _answer(text, parts, shape=Shape.COMPARISON, abstained=False):
    return Answer("q", text, tuple(p.citation for p in parts if p.citation), (), abstained, AnswerMode.READER,
                  Mode.HYBRID, shape=shape, parts=tuple(parts))


GOLD = GoldQuestion("x", "q", Shape.COMPARISON,
                    (GoldPart("长安", ("471台",), "471台机器人有序作业"), GoldPart("赛力斯", ("300多台",), "300多台机器人以毫秒级")),
                    head=("长安数智工厂更多",))


def test_the_set_parses_and_covers_the_four_shapes():
    questions = load_set(ROOT / DEFAULT_SET)
    assert len(questions) >= 40
    assert {q.shape for q in questions} == {Shape.COMPARISON, Shape.FACTS, Shape.LIST, Shape.QUALIFIED}
    assert sum(not q.answerable for q in questions) >= 8


def test_a_malformed_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "question": "q", "shape": "nonsense"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_set(path)


def test_every_part_cited_and_the_winner_is_correct():
    parts = [Part("a", "471台", _citation(1, "记者在焊装车间看到，471台机器人有序作业。", 0)),
             Part("b", "300多台", _citation(2, "焊装车间里，300多台机器人以毫秒级节奏协同作业。", 100))]
    assert score_answer(GOLD, _answer("长安数智工厂更多：471台，300多台", parts)).correct
    assert not score_answer(GOLD, _answer("赛力斯超级工厂更多：471台，300多台", parts)).correct


def test_two_parts_from_one_sentence_lacking_a_figure_are_caught():
    sentence = "记者在焊装车间看到，471台机器人有序作业。"
    parts = [Part("a", "471台", _citation(1, sentence, 0)), Part("b", "300多台", _citation(2, sentence, 0))]
    score = score_answer(GOLD, _answer("长安数智工厂更多：471台，300多台", parts))
    assert score.one_sentence and not score.correct


def test_a_forbidden_figure_fails_a_decline():
    gold = GoldQuestion("y", "2024年重庆汽车产量是多少？", Shape.QUALIFIED, (), answerable=False, forbidden=("278.8万辆",))
    assert score_answer(gold, _answer("资料中没有找到。", [], Shape.QUALIFIED, abstained=True)).correct
    wrong = [Part("q", "278.8万辆", _citation(1, "2025年，重庆汽车产量达278.8万辆", 0))]
    assert not score_answer(gold, _answer("278.8万辆", wrong, Shape.QUALIFIED)).correct


def test_compositional_set_meets_the_thresholds(seed_index):
    """The CI gate: answered with every part and the right winner (or declined right) at or above the floor."""
    from rag.answer import Answerer

    answerer = Answerer(seed_index)
    if not answerer.reader.available:
        pytest.skip("the reader needs torch and its adapter")
    gate = json.loads(THRESHOLDS.read_text(encoding="utf-8"))["compositional"]
    metrics = run(lambda q: answerer.run(q), load_set(ROOT / DEFAULT_SET)).metrics
    failures = [f"{k} = {metrics[k]} < {v}" for k, v in gate["min"].items() if metrics[k] < v]
    failures += [f"{k} = {metrics[k]} > {v}" for k, v in gate["max"].items() if metrics[k] > v]
    assert not failures, failures
