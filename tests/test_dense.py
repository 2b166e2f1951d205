import numpy as np
import pytest

from rag.bench.search import perturbed_vectors, recall_at
from rag.index.stores.faiss import build_store, ivf_lists, load_store
from rag.index import EXACT_SEARCH_MAX, build_index, choose_dense_kind, load_index, read_manifest

CORPUS = EXACT_SEARCH_MAX + 20_000  # above the threshold, and small enough for a fast test


@pytest.fixture(scope="module")
def corpus(seed_index):
    """Seed unit embeddings plus noise: clustered like a real corpus, above the threshold."""
    base = seed_index.dense.vectors(range(seed_index.dense.size))
    return perturbed_vectors(base, CORPUS, seed=0), perturbed_vectors(base, 200, seed=1)


def test_exact_search_up_to_the_threshold_and_ivf_above():
    assert choose_dense_kind(556) == "flat"
    assert choose_dense_kind(EXACT_SEARCH_MAX) == "flat"
    assert choose_dense_kind(EXACT_SEARCH_MAX + 1) == "ivf_sq8"
    assert choose_dense_kind(CORPUS) == "ivf_sq8"
    assert choose_dense_kind(CORPUS, exact_max=CORPUS) == "flat"
    with pytest.raises(ValueError, match="must be >= 0"):
        choose_dense_kind(-1)


def test_approximate_index_above_the_threshold_keeps_recall_at_10(corpus, tmp_path):
    vectors, queries = corpus
    kind = choose_dense_kind(len(vectors))
    exact = build_store(vectors, "flat").search(queries, 10)[1]
    store = build_store(vectors, kind)
    assert store.kind == "ivf_sq8" and store.size == CORPUS
    found = store.search(queries, 10)[1]
    assert recall_at(found, exact) >= 0.95
    # Saved and loaded, it answers the same.
    store.save(tmp_path)
    again = load_store(tmp_path, kind)
    assert np.array_equal(again.search(queries, 10)[1], found)


def test_hnsw_keeps_recall_at_10(corpus):
    vectors, queries = corpus
    vectors = vectors[:10_000]
    exact = build_store(vectors, "flat").search(queries, 10)[1]
    assert recall_at(build_store(vectors, "hnsw").search(queries, 10)[1], exact) >= 0.95


def test_ivf_lists_stay_trainable_on_small_corpora():
    assert ivf_lists(556) == 556 // 39
    assert ivf_lists(1_000_000) == 4000
    assert ivf_lists(10) == 1


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown dense index kind 'annoy'"):
        build_store(np.eye(4, dtype=np.float32), "annoy")
    with pytest.raises(ValueError, match="unknown dense index kind"):
        load_store(tmp_path, "annoy")


def test_the_manifest_records_the_kind_and_the_index_loads_with_it(index_copy, seeds_dir, seed_index):
    build_index(seeds_dir, index_copy, seed_index.embedder, dense_kind="ivf_sq8")
    assert read_manifest(index_copy)["dense"]["kind"] == "ivf_sq8"
    index = load_index(index_copy, seed_index.embedder)
    assert index.dense.kind == "ivf_sq8"
    query = seed_index.dense.vectors([0])[0]
    assert index.dense.search(query, 1)[1][0][0] == seed_index.dense.search(query, 1)[1][0][0] == 0
