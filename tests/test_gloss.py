"""English questions over Chinese documents: CC-CEDICT translations kept where the corpus uses them."""

import pytest

from rag.gloss import Glossary, glossary_for
from rag.retrieve import RetrievalConfig, Retriever


class _Vocabulary:
    """A keyword store's vocabulary and document frequencies, without an index."""

    def __init__(self, df: dict[str, int]) -> None:
        self.df = df

    def knows(self, token: str) -> bool:
        return token in self.df

    def idf(self, token: str) -> float:
        return -float(self.df.get(token, 0))  # more documents, lower idf, earlier


def _entry(simplified, pinyin, *definitions):
    return {"simplified": simplified, "pinyin": pinyin, "definitions": list(definitions)}


DICTIONARY = [
    _entry("成立", "cheng2 li4", "to establish", "to set up"),
    _entry("人工智能", "ren2 gong1 zhi4 neng2", "artificial intelligence (AI)"),
    _entry("人工智慧", "ren2 gong1 zhi4 hui4", "artificial intelligence (AI)"),  # Taiwan usage
    _entry("智能", "zhi4 neng2", "intelligent", "intelligence"),
    _entry("重庆", "Chong2 qing4", "Chongqing city (Chungking), formerly in Sichuan province"),
    _entry("产业", "chan3 ye4", "industry", "estate"),
    _entry("工业", "gong1 ye4", "industry"),
    _entry("王", "Wang2", "surname Wang"),
]
CORPUS = {"成立": 3, "人工智能": 9, "智能": 12, "重庆": 20, "产业": 8, "工业": 2, "王": 1}


@pytest.fixture()
def glossary():
    return Glossary.build(_Vocabulary(CORPUS), DICTIONARY)


def test_phrases_translate_to_the_words_the_corpus_uses(glossary):
    translation = glossary.translate("When was the Chongqing AI industry established?")
    assert translation.groups == [["重庆"], ["人工智能"], ["产业", "工业"], ["成立"]]
    assert translation.chinese == "重庆人工智能产业成立"
    assert translation.missing == [] and translation.unseen == 0.0


def test_the_longest_phrase_wins_and_words_outside_the_corpus_never_come(glossary):
    assert glossary.terms("artificial intelligence") == ["人工智能"]  # not 智能, never 人工智慧


def test_surname_glosses_and_question_words_are_not_translations(glossary):
    translation = glossary.translate("How large is the wang of Jupiter?")
    assert translation.terms == []
    assert translation.missing == ["wang", "jupit"]  # stemmed; "how large" is the asking
    assert translation.unseen == 1.0


def test_the_seed_glossary_translates_the_issue_questions(seed_index):
    glossary = glossary_for(seed_index.keywords)
    assert glossary_for(seed_index.keywords) is glossary  # built once per store
    terms = glossary.terms("How large is the Chongqing artificial intelligence industry fund?")
    assert {"重庆", "人工智能", "产业", "基金"} <= set(terms)
    assert glossary.translate("Who won the 2022 FIFA World Cup?").unseen > 0.3


def test_an_english_question_finds_its_chinese_passage_by_keywords(any_index):
    question = "When was the Chongqing AI College officially established?"
    glossed = Retriever(any_index).run(question, mode="bm25", k=3)
    assert any("正式挂牌成立" in h.chunk.text for h in glossed), [h.chunk.text[:30] for h in glossed]
    plain = Retriever(any_index, RetrievalConfig(gloss_english=False)).run(question, mode="bm25", k=3)
    assert not any("正式挂牌成立" in h.chunk.text for h in plain)


def test_chinese_questions_are_searched_as_asked(seed_index):
    retriever = Retriever(seed_index)
    assert retriever.keyword_query("重庆人工智能学院是哪天挂牌成立的？") == "重庆人工智能学院是哪天挂牌成立的？"


def test_an_english_question_is_searched_densely_with_its_translations_too(any_index):
    # The issue's own question: e5 ranks the fund's chunk 33rd for the English alone.
    question = "How large is the Chongqing artificial intelligence industry fund?"
    glossed = Retriever(any_index).run(question, mode="dense", k=5)
    assert any("产业基金" in h.chunk.text for h in glossed), [h.chunk.text[:30] for h in glossed]
    plain = Retriever(any_index, RetrievalConfig(gloss_english=False)).run(question, mode="dense", k=5)
    assert not any("产业基金" in h.chunk.text for h in plain)
    hybrid = Retriever(any_index).run(question, k=5)
    assert any("产业基金" in h.chunk.text for h in hybrid)
