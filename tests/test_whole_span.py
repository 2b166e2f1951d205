"""A short answer keeps its figure whole: qualifier, unit, the rest of its date (issue 39 item 9)."""

from __future__ import annotations

import pytest

from rag.whole_span import whole_span


@pytest.mark.parametrize("text, span, expected", [
    ("超过3000台机器人在5G网络下协同作业", "3000", "超过3000台"),
    ("焊装车间共有300多台机器人", "300", "300多台"),
    ("新能源汽车产量达129.6万辆，同比增长", "129.6", "129.6万辆"),
    ("新能源汽车产量达129.6万辆，同比增长", "129.6万", "129.6万辆"),
    ("基金规模约30亿元。", "30亿元", "约30亿元"),
    ("营收增长12.5%，", "12.5", "12.5%"),
    ("发布会于2026年3月18日举行", "2026年", "2026年3月18日"),
    ("发布会于2026年3月18日举行", "3月18日", "2026年3月18日"),
    ("发布会于2026年3月18日举行", "2026年3月", "2026年3月18日"),
])
def test_a_cut_figure_or_date_is_widened_to_the_whole_expression(text, span, expected):
    a = text.index(span)
    s, e = whole_span(text, a, a + len(span))
    assert text[s:e] == expected


@pytest.mark.parametrize("text, span", [
    ("有471台机器人", "471台"),  # already whole
    ("位于两江新区的模力高地", "两江新区"),  # no figure
    ("这是全市唯一个试点", "唯一"),  # a numeral inside a word is not a number
    ("2025年全市产量创新高", "2025年全市产量"),  # the date is inside the span, whole already
    ("第一批企业", "企业"),
])
def test_a_whole_answer_or_one_without_a_figure_is_left_as_it_is(text, span):
    a = text.index(span)
    assert whole_span(text, a, a + len(span)) == (a, a + len(span))


def test_the_span_never_leaves_its_text():
    assert whole_span("3000", 0, 4) == (0, 4)
    assert whole_span("约3000", 1, 5) == (0, 5)
    assert whole_span("abc", 2, 2) == (2, 2)


def test_the_reader_shows_the_figure_with_its_qualifier_and_unit(seed_index):
    from rag.answer import Answerer

    # The article: "超过3000台机器人在5G网络下协同作业"; the bold answer used to read "3000".
    answer = Answerer(seed_index).run("有多少台机器人在5G网络下协同作业？")
    assert answer.mode.value == "reader" and answer.short.startswith("超过3000台")
    citation = answer.citations[0]
    doc = seed_index.documents[citation.doc_id]
    assert doc.text[citation.answer_start : citation.answer_end] == answer.short
