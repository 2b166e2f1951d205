from rag.clean import clean
from rag.text import squash


def test_hard_wrapped_lines_of_004_are_joined(seed_docs):
    text = seed_docs["004"].text
    assert "人工智能是新一轮科技革命和产业变革的重要驱动力量。" in text
    assert "6月9日下午，市委财经委员会第十二次会议指出" in text
    assert "市综合经济研究院技术经济研究中心副主任简华球表示" in text


def test_mid_sentence_paragraph_breaks_of_002_are_joined(seed_docs):
    text = seed_docs["002"].text
    assert "正式投用。以场景应用为牵引,以AI技术创新为驱动" in text
    assert "重庆正以“33618”现代制造业集群体系为抓手" in text
    assert "包括国家肿瘤数据库" in text


def test_headings_stay_on_their_own_line(seed_docs):
    lines = seed_docs["004"].text.split("\n")
    assert "强化基础能力建设 构建产业生态体系" in lines
    assert "凝聚共识 助力人工智能发展驶入快车道" in lines
    assert "市教委" in lines


def test_doubled_runs_collapse_to_one_copy(seed_docs):
    text = seed_docs["004"].text
    assert "位于西部科学城重庆高新区的嘉陵江实验室，聚焦数智科技、人工智能和高端智能装备等领域开展研究。" in text
    for damage in ("聚焦数智科技聚焦数智科技", "记者记者", "柯俊彬柯俊彬", "摄摄", "，，", "。。", "、、"):
        assert damage not in text


def test_legitimate_repeats_survive():
    text, _ = clean("是全国智能网联领域唯一一个、也是重庆市唯一一个入选场景。大家一一握手。")
    assert "唯一一个" in text and "一一握手" in text


def test_captions_do_not_glue_sentences(seed_docs):
    text = seed_docs["003"].text
    # The caption sits between the two halves of a broken sentence; it must stay apart.
    assert "實施創新發展位於合川" not in text
    assert "\n位於合川高新區的重慶市智能網聯新能源汽車零部件產業園展示中心\n" in text
    text4 = seed_docs["004"].text
    assert "人形机器人产品。（资料图） 记者 柯俊彬 摄\n" in text4
    assert "技术产品。 记者 高吕艳杏 摄\n市经济信息委" in text4


def test_every_cleaned_character_maps_to_the_same_original_character(seed_docs):
    for doc in seed_docs.values():
        assert len(doc.offsets) == len(doc.text)
        assert list(doc.offsets) == sorted(doc.offsets)
        for ch, offset in zip(doc.text, doc.offsets):
            original = doc.original[offset]
            assert ch == original or (ch.isspace() and original.isspace()), (doc.id, offset, ch, original)


def test_cleaning_keeps_all_text_but_damage(seed_docs):
    doc = seed_docs["000"]
    assert squash(doc.text) == squash(doc.original)


def test_running_headers_and_page_numbers_are_dropped_with_offsets_into_the_original():
    from rag.clean import running_lines

    pages = ["内部资料\n第一章\n正文一。\n- 1 -", "内部资料\n正文二在这一页。\n- 2 -", "内部资料\n正文三。\n- 3 -"]
    original = "\n\n".join(pages)
    spans, pos = [], 0
    for page in pages:
        spans.append((pos, pos + len(page)))
        pos += len(page) + 2
    drop = running_lines(original, spans)
    assert [original[s:e] for s, e in drop] == ["内部资料", "- 1 -", "内部资料", "- 2 -", "内部资料", "- 3 -"]
    text, offsets = clean(original, drop)
    assert "内部资料" not in text and "- 2 -" not in text and "正文二在这一页。" in text
    start = text.index("正文二")
    assert original[offsets[start]:offsets[start] + 3] == "正文二"
    assert running_lines(original, spans[:2]) == []  # two pages cannot tell a title from a header
