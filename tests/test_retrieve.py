import pytest

from rag.retrieve import QuestionError, Retriever, resolve_follow_up, rrf

MODES = ("bm25", "dense", "hybrid")


def _top_docs(index, question, mode, k=3):
    return [(h.chunk.doc_id[:3], h.chunk.text) for h in Retriever(index).run(question, mode=mode, k=k)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("question", ["重庆人工智能产业基金规模有多大", "重慶人工智能產業基金規模有多大"])
def test_fund_size_chunk_is_in_the_top_3(any_index, mode, question):
    top = _top_docs(any_index, question, mode)
    assert any(doc == "000" and "200亿元" in text for doc, text in top), top


@pytest.mark.parametrize("mode", MODES)
def test_moli_gaodi_opening_is_found(any_index, mode):
    top = _top_docs(any_index, "模力高地什么时候投用", mode)
    assert any(doc == "002" and "5月22日" in text for doc, text in top), top


def test_hits_carry_ranks_and_spans(any_index):
    hits = Retriever(any_index).run("算力券", mode="hybrid", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(h.dense_rank or h.bm25_rank for h in hits)
    doc = any_index.documents[hits[0].chunk.doc_id]
    assert doc.original[hits[0].chunk.orig_start : hits[0].chunk.orig_end]


def test_rrf_fuses_by_reciprocal_rank():
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert [i for i, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


@pytest.mark.parametrize("question", ["", "   ", "问" * 2001])
def test_bad_questions_are_refused_clearly(seed_index, question):
    with pytest.raises(QuestionError):
        Retriever(seed_index).run(question)


def test_elliptical_follow_up_carries_the_topic(any_index):
    first = "重庆人工智能产业基金是在哪里设立的？"
    follow = resolve_follow_up("那它的规模呢？", [first])
    assert "基金" in follow
    top = _top_docs(any_index, follow, "hybrid")
    assert any("200亿元" in text for _, text in top)
    assert resolve_follow_up("赛力斯超级工厂有多少台机器人？", [first]) == "赛力斯超级工厂有多少台机器人？"


def test_words_that_merely_contain_a_pronoun_character_are_not_follow_ups():
    history = ["重庆人工智能产业基金是谁设立的？"]
    assert resolve_follow_up("重庆有多少家米其林餐厅？", history) == "重庆有多少家米其林餐厅？"
    assert resolve_follow_up("应该怎么申请算力券？", history) == "应该怎么申请算力券？"
    assert "基金" in resolve_follow_up("这个基金是哪天签约的？", ["重庆通用人工智能产业基金在哪里签约？"])


def test_k_of_zero_is_refused_not_taken_as_the_default(seed_index):
    with pytest.raises(ValueError, match="k must be positive, got 0"):
        Retriever(seed_index).run("算力券", k=0)
    assert len(Retriever(seed_index).run("算力券", k=None)) == 5  # None still means the configured k


def test_a_follow_up_carries_the_topic_not_the_asked_attribute(seed_index):
    # The asked attribute of the previous question (正式投用, 规模) is not carried, only its topic.
    assert resolve_follow_up("那它的面积呢？", ["“模力高地”什么时候正式投用？"]) == "模力高地的面积呢？"
    assert resolve_follow_up("那它是什么时候签约的？", ["重庆人工智能产业基金规模有多大"]) == "重庆人工智能产业基金是什么时候签约的？"
    assert resolve_follow_up("面积呢？", ["“模力高地”什么时候正式投用？"]) == "模力高地的面积呢？"
    # The topic carries on over several follow-ups when the history holds the questions as understood.
    assert resolve_follow_up("它在哪里？", ["“模力高地”什么时候正式投用？", "模力高地的面积呢？"]) == "模力高地在哪里？"


def test_a_name_the_tagger_splits_stays_whole_when_the_documents_hold_it(seed_index):
    # jieba tags 通用 a verb, so by tags alone the fund's follow-up was about 重庆.
    first = "重庆通用人工智能产业基金的规模有多大？"
    assert resolve_follow_up("那它是什么时候签约的？", [first]) == "重庆是什么时候签约的？"
    assert (resolve_follow_up("那它是什么时候签约的？", [first], seed_index.mentions)
            == "重庆通用人工智能产业基金是什么时候签约的？")
    # A name with no noun tag at its start: the documents' own phrase is the topic.
    assert resolve_follow_up("它有多大？", ["西部科学城重庆高新区有哪些项目？"], seed_index.mentions).startswith(
        "西部科学城重庆高新区")
    # The documents hold 重庆人工智能 but never name this museum: its name is not cut to what they hold.
    assert seed_index.mentions("重庆人工智能") and not seed_index.mentions("重庆人工智能博物馆")
    assert (resolve_follow_up("那它是哪年开馆的？", ["重庆人工智能博物馆的馆长是谁？"], seed_index.mentions)
            .startswith("重庆人工智能博物馆"))


def test_the_index_knows_which_phrases_its_documents_hold(seed_index):
    assert seed_index.mentions("重庆通用人工智能产业基金")
    assert seed_index.mentions("重慶通用人工智能產業基金")  # the matching form: Traditional reads as Simplified
    assert not seed_index.mentions("") and not seed_index.mentions("米其林餐厅")
