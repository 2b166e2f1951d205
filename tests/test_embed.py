import numpy as np
import pytest

from rag.embed import EmbeddingCache, make_embedder
from rag.embed.st_backend import BGE_ZH_QUERY, role_prefixes


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, seeds_dir):
    """A tiny BERT sentence-transformers model built and saved here: no download involved."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("models")
    chars = sorted({c for p in seeds_dir.glob("*.txt") for c in p.read_text(encoding="utf-8") if not c.isspace()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "query", "passage"] + chars[:3000]
    hf_dir = folder / "hf"
    BertTokenizerFast(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(hf_dir)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(hf_dir)
    transformer = models.Transformer(str(hf_dir), max_seq_length=128)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    out = folder / "tiny-e5-zh"
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return out


def test_sentence_transformers_backend_loads_a_local_model(tiny_model_dir):
    embedder = make_embedder(f"st:{tiny_model_dir}")
    assert embedder.dim == 32
    assert embedder.model_id == f"st:{tiny_model_dir}"
    queries = embedder.embed_queries(["重庆人工智能产业基金规模有多大", "模力高地"])
    passages = embedder.embed_passages(["重庆人工智能产业基金规模有多大"])
    assert queries.shape == (2, 32) and passages.shape == (1, 32)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    # e5-family models get different role prefixes, so the same text embeds differently.
    assert not np.allclose(queries[0], passages[0])


def test_role_prefixes_follow_the_model_family():
    assert role_prefixes("intfloat/multilingual-e5-base") == ("query: ", "passage: ")
    assert role_prefixes("BAAI/bge-small-zh-v1.5") == (BGE_ZH_QUERY, "")
    assert role_prefixes("some/other-model") == ("", "")


def test_unknown_spec_is_refused():
    with pytest.raises(ValueError, match="unknown model spec"):
        make_embedder("word2vec")


def test_missing_local_model_fails_clearly(tmp_path):
    embedder = make_embedder(f"st:{tmp_path / 'nope'}")
    with pytest.raises(RuntimeError, match="cannot load sentence-transformers model"):
        embedder.embed_queries(["x"])


def test_default_model_ranks_the_relevant_passage_first(embedder):
    q = embedder.embed_queries(["重庆人工智能产业基金规模有多大"])[0]
    p = embedder.embed_passages(["设立200亿元规模的重庆人工智能产业基金", "赛力斯超级工厂有3000台机器人"])
    assert embedder.dim == 384
    assert (p @ q)[0] > (p @ q)[1]


def test_cache_embeds_only_new_texts(tmp_path, tiny_model_dir):
    embedder = make_embedder(f"st:{tiny_model_dir}")
    cache = EmbeddingCache(tmp_path, embedder.model_id)
    first, fresh = cache.embed(embedder, ["甲乙丙", "丁戊己"])
    assert fresh == 2
    cache.save()
    again = EmbeddingCache(tmp_path, embedder.model_id)
    second, fresh = again.embed(embedder, ["甲乙丙", "丁戊己", "庚辛壬"])
    assert fresh == 1
    assert np.allclose(first, second[:2])


class _Hashed:
    """A deterministic stand-in embedder (plumbing only): a vector from each text's hash."""

    model_id, dim = "test/hashed", 8

    def __init__(self, fail_on_call: int | None = None) -> None:
        self.calls, self.texts, self.fail_on_call = 0, 0, fail_on_call

    def embed_passages(self, texts):
        import hashlib

        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt  # as a kill would stop it, late in the run
        self.texts += len(texts)
        rows = [np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=8) for t in texts]
        return np.asarray(rows, dtype=np.float32)


def test_cache_keeps_the_steps_embedded_before_an_interruption(tmp_path):
    texts = [f"第{i}句话。" for i in range(10)]
    cache = EmbeddingCache(tmp_path, _Hashed.model_id, save_every=4)
    with pytest.raises(KeyboardInterrupt):
        cache.embed(_Hashed(fail_on_call=5), texts, batch_size=2)  # 8 embedded, in two steps of 4
    assert len(list(tmp_path.glob("*.part-*.npz"))) == 2
    again = EmbeddingCache(tmp_path, _Hashed.model_id, save_every=4)
    embedder = _Hashed()
    vectors, fresh = again.embed(embedder, texts, batch_size=2)
    assert fresh == embedder.texts == 2
    again.save()  # one file again, holding everything
    assert not list(tmp_path.glob("*.part-*.npz")) and not list(tmp_path.glob(".*"))
    assert np.array_equal(EmbeddingCache(tmp_path, _Hashed.model_id).embed(_Hashed(), texts)[0], vectors)


def test_cache_removes_only_temporary_files_of_dead_writers(tmp_path):
    import os

    dead = tmp_path / ".embeddings-test_hashed.4194305.abc123.tmp.npz"  # above any pid_max: never a live pid
    live = tmp_path / f".embeddings-test_hashed.{os.getpid()}.def456.tmp.npz"
    dead.write_bytes(b"partial")
    live.write_bytes(b"partial")
    assert EmbeddingCache.remove_leftovers(tmp_path) == [dead]
    assert live.exists() and not dead.exists()
