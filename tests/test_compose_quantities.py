"""rag/compose/quantities.py: figures with units, bounds, and how two compare."""

import math

from rag.compose.quantities import chinese_number, compare, dates, quantities


def one(text):
    found = quantities(text)
    assert len(found) == 1, found
    return found[0]


def test_a_figure_carries_its_unit_and_written_scale():
    q = one("2025年，重庆汽车产量达278.8万辆")
    assert (q.text, q.low, q.high, q.unit, q.scale) == ("278.8万辆", 2_788_000, 2_788_000, "辆", 1e4)


def test_more_than_and_about_read_as_bounds():
    assert (one("300多台机器人").low, one("300多台机器人").high) == (300, 400)
    assert (one("2000余项").low, one("2000余项").high) == (2000, 3000)
    over = one("超过3000台机器人")
    assert over.low == 3000 and math.isinf(over.high)
    assert math.isinf(one("三成以上").high) and one("三成以上").unit == "%"


def test_years_are_not_figures_and_dates_are_days():
    assert quantities("2025年9月8日") == []
    assert [q.unit for q in quantities("5年来新增9名")] == ["年", "名"]
    (day,) = dates("2025年9月8日")
    (year,) = dates("2026年")
    assert day.exact and day.high < year.low


def test_chinese_numerals():
    assert chinese_number("三十") == 30 and chinese_number("两百") == 200 and chinese_number("十五") == 15
    assert chinese_number("重庆") is None


def test_an_exact_figure_beats_a_lower_bound_below_it_by_a_range():
    result = compare(one("471台"), one("300多台"))
    assert result.larger == 0 and result.difference == "71至171台"


def test_difference_keeps_the_written_scale():
    assert compare(one("278.8万辆"), one("129.6万辆")).difference == "149.2万辆"
    assert compare(one("增长5.9%"), one("增速达7.0%")).difference == "1.1个百分点"


def test_more_than_a_figure_beats_it_by_at_least_the_gap():
    result = compare(one("超过3000台"), one("1400多台"))
    assert result.larger == 0 and result.difference == "至少1500台"


def test_overlapping_bounds_name_no_winner_and_units_must_agree():
    assert compare(one("300多台"), one("350台")).larger is None
    assert compare(one("30余家"), one("16个")) is None


def test_earlier_date():
    assert compare(dates("2025年9月8日")[0], dates("2026年1月10日")[0]).larger == 1
