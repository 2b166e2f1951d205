import pytest

from rag.chunk import ChunkConfig, chunk_document
from rag.text import sentence_spans, squash


def test_chunk_spans_slice_back_to_the_text(seed_docs):
    for doc in seed_docs.values():
        chunks = chunk_document(doc)
        assert chunks
        for chunk in chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
            assert (chunk.orig_start, chunk.orig_end) == doc.original_span(chunk.start, chunk.end)
            kept = "".join(doc.original[o] for o in doc.offsets[chunk.start : chunk.end])
            assert squash(kept) == squash(chunk.text)
            if doc.id[:3] != "004":  # 004's slices also hold the collapsed doubled caption
                assert squash(doc.original[chunk.orig_start : chunk.orig_end]) == squash(chunk.text)


def test_chunks_are_sized_and_overlap_by_one_sentence(seed_docs):
    config = ChunkConfig()
    for doc in seed_docs.values():
        chunks = chunk_document(doc, config)
        for chunk in chunks:
            assert len(chunk.text) <= config.max_chars
        for a, b in zip(chunks, chunks[1:]):
            assert doc.text[a.end : b.start].strip() == ""  # overlapping or adjacent, never a gap
            assert b.start > a.start


def test_chunks_never_cut_a_sentence(seed_docs):
    doc = seed_docs["002"]
    boundaries = {s for s, _ in sentence_spans(doc.text)} | {e for _, e in sentence_spans(doc.text)}
    for chunk in chunk_document(doc):
        assert chunk.start in boundaries and chunk.end in boundaries


def test_chunk_ids_are_stable_and_carry_headings(seed_docs):
    doc = seed_docs["004"]
    first, second = chunk_document(doc), chunk_document(doc)
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    assert all(c.doc_id == doc.id for c in first)
    assert any(c.heading == "创新人才培养模式 夯实发展智力支撑" for c in first)


def test_long_sentence_is_split_at_clause_breaks():
    from rag.types import Document

    text = "，".join(["重庆人工智能产业加快发展"] * 60) + "。"
    doc = Document("x", "x.txt", "x", None, "0" * 64, "utf-8", text, text, tuple(range(len(text))))
    chunks = chunk_document(doc, ChunkConfig(min_chars=50, max_chars=120))
    assert all(len(c.text) <= 120 for c in chunks)
    assert "".join(c.text for c in chunks if True).count("重庆") >= 60


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="min_chars"):
        ChunkConfig(min_chars=500, max_chars=100)
