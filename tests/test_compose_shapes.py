"""rag/compose/shapes.py: the question's shape and its sub-questions."""

import pytest

from rag.compose.shapes import recognise
from rag.types import Shape


def test_comparison_splits_into_one_question_per_subject_with_the_shared_words():
    shape = recognise("长安数智工厂和赛力斯超级工厂的焊装车间，哪个机器人更多？")
    assert shape.shape is Shape.COMPARISON and shape.adjective == "多" and not shape.asks_difference
    assert [p.subject for p in shape.parts] == ["长安数智工厂", "赛力斯超级工厂"]
    assert [p.question for p in shape.parts] == ["长安数智工厂的焊装车间机器人有多少？", "赛力斯超级工厂的焊装车间机器人有多少？"]


def test_a_measure_compared_takes_the_year_and_place_of_the_first():
    shape = recognise("2025年重庆汽车产量和新能源汽车产量哪个更高？")
    assert [p.question for p in shape.parts] == ["2025年重庆汽车产量是多少？", "2025年重庆新能源汽车产量是多少？"]


def test_a_than_question_asks_the_difference():
    shape = recognise("2025年重庆汽车产量比新能源汽车产量多多少万辆？")
    assert shape.shape is Shape.COMPARISON and shape.asks_difference
    assert [p.question for p in shape.parts] == ["2025年重庆汽车产量是多少万辆？", "2025年重庆新能源汽车产量是多少万辆？"]


def test_earlier_asks_when():
    shape = recognise("重庆人工智能学院和模力高地，哪个更早投用？")
    assert shape.adjective == "早"
    assert shape.parts[0].question == "重庆人工智能学院是什么时候投用的？"


@pytest.mark.parametrize("question", ["2025年重庆汽车产量和新能源汽车产量分别是多少？",
                                      "2025年重庆汽车产量和新能源汽车产量是多少？"])
def test_several_facts(question):
    shape = recognise(question)
    assert shape.shape is Shape.FACTS
    assert [p.question for p in shape.parts] == ["2025年重庆汽车产量是多少？", "2025年重庆新能源汽车产量是多少？"]


def test_each_of_several():
    shape = recognise("长安数智工厂和赛力斯超级工厂的焊装车间各有多少台机器人？")
    assert shape.shape is Shape.FACTS
    assert shape.parts[1].question == "赛力斯超级工厂的焊装车间有多少台机器人？"


def test_list_and_time_qualified():
    assert recognise("重庆人工智能学院拟与哪些车企共建智能网联汽车研究平台？").shape is Shape.LIST
    shape = recognise("2025年重庆新能源汽车产量是多少？")
    assert shape.shape is Shape.QUALIFIED and shape.qualifiers.years == {2025}
    assert recognise("目前南岸区累计建成了多少个市级数字化车间？").shape is Shape.QUALIFIED


@pytest.mark.parametrize("question", ["重庆人工智能产业基金规模有多大？", "渝中区和新疆哪个县搞了算力政策联动？",
                                      "重庆脑与智能科学中心和哪家单位共建了重点实验室？", "模力高地的面积是多少？"])
def test_plain_questions_stay_plain(question):
    shape = recognise(question)
    assert shape.shape is Shape.PLAIN and not shape.compositional and shape.parts == ()


@pytest.mark.parametrize("question", ["重庆脑与智能科学中心有多少名科研人员？", "南岸区和重庆经开区一共有多少个市级以上创新平台？",
                                      "“多尺度认知计算理论及应用”是全国人工智能领域第几个国家自然科学基金委创新研究群体？"])
def test_a_name_with_a_joining_word_or_a_total_is_one_fact(question):
    assert recognise(question).shape is Shape.PLAIN


def test_growth_over_last_year_is_not_a_comparison():
    assert recognise("2025年重庆新能源汽车产量比上年增长了多少？").shape is Shape.QUALIFIED
