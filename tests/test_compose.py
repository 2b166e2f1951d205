"""rag/compose/compose.py end to end: composed answers over the seed index with the real reader."""

import json

import pytest

from rag.types import Shape


@pytest.fixture(scope="module")
def answerer(seed_index):
    from rag.answer import Answerer

    answerer = Answerer(seed_index)
    if not answerer.reader.available:
        pytest.skip("the reader needs torch and its adapter")
    return answerer


def test_comparison_names_the_larger_and_cites_each_figure_to_its_own_sentence(answerer):
    answer = answerer.run("长安数智工厂和赛力斯超级工厂的焊装车间，哪个机器人更多？")
    assert answer.shape is Shape.COMPARISON and not answer.abstained
    first = answer.text.split("\n")[0]
    assert first.startswith("长安数智工厂更多") and "471台" in first and "300多台" in first
    shorts = [p.short for p in answer.parts]
    assert shorts == ["471台", "300多台"]
    changan, seres = (p.citation for p in answer.parts)
    assert "471台机器人" in changan.sentence and "300多台机器人" in seres.sentence
    assert changan.n == 1 and seres.n == 2 and "[1]" in answer.text and "[2]" in answer.text


def test_a_year_asked_gets_that_years_figure_never_a_target_of_another(answerer):
    answer = answerer.run("2025年重庆新能源汽车产量是多少？")
    assert answer.shape is Shape.QUALIFIED and "100万辆" not in answer.text
    assert answer.short == "129.6万辆" and "129.6万辆" in answer.citations[0].sentence


def test_a_year_the_articles_do_not_give_is_declined(answerer):
    answer = answerer.run("2024年重庆汽车产量是多少？")
    assert answer.abstained and "278.8" not in answer.text


def test_several_facts_each_cited(answerer):
    answer = answerer.run("2025年重庆汽车产量和新能源汽车产量分别是多少？")
    assert answer.shape is Shape.FACTS
    assert [p.short for p in answer.parts] == ["278.8万辆", "129.6万辆"]
    assert all(p.citation is not None and p.short in p.citation.sentence for p in answer.parts)


def test_a_part_absent_is_named_instead_of_a_guessed_winner(answerer):
    answer = answerer.run("长安数智工厂和比亚迪工厂的焊装车间，哪个机器人更多？")
    first = answer.text.split("\n")[0]
    assert first.startswith("无法比较") and "比亚迪工厂" in first
    assert answer.parts[1].short == "" and answer.parts[1].citation is None


def test_a_plain_question_takes_the_plain_path(answerer):
    answer = answerer.run("重庆人工智能产业基金规模有多大？")
    assert answer.shape is Shape.PLAIN and answer.parts == ()
    assert "200亿元" in answer.text


def test_parts_are_in_the_json(answerer):
    data = json.loads(json.dumps(answerer.run("2025年重庆汽车产量和新能源汽车产量分别是多少？").to_dict()))
    assert data["shape"] == "facts"
    assert [p["short"] for p in data["parts"]] == ["278.8万辆", "129.6万辆"]
    assert data["parts"][0]["citation"]["n"] == 1
