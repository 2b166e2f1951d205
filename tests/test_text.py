"""rag/text.py: the tokenizer's taught terms."""

from rag import text as textmod
from rag.index import domain_terms


def test_teaching_the_same_terms_again_changes_neither_the_cut_nor_the_total(seed_docs):
    # Every build and load teaches the corpus terms again; jieba used to add their frequency to its total
    # each time, which moved the cut of unrelated words (亮|起 → 亮起) within one process.
    terms = domain_terms(list(seed_docs.values()))
    textmod.add_words(terms)
    total = textmod._jieba().total
    before = [textmod.tokenize(d.text) for d in seed_docs.values()]
    for _ in range(50):
        textmod.add_words(terms)
    assert textmod._jieba().total == total
    assert [textmod.tokenize(d.text) for d in seed_docs.values()] == before
    assert "模力高地" in textmod.tokenize("模力高地正式投用")
