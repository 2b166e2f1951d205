import numpy as np

from rag.calibrate import MAX_FALSE_ABSTENTION, choose_threshold, out_of_fold_confidence


def test_the_cut_sits_halfway_between_the_confidences_it_separates():
    confidence = np.array([0.10, 0.20, 0.30, 0.90, 0.95])
    answerable = np.array([0, 0, 1, 1, 1], dtype=float)
    assert choose_threshold(confidence, answerable) == 0.25


def test_the_cut_never_abstains_on_more_answerable_questions_than_allowed():
    rng = np.random.default_rng(0)
    confidence = rng.random(200)
    answerable = (rng.random(200) < confidence).astype(float)  # overlapping classes
    cut = choose_threshold(confidence, answerable)
    false_abstention = ((confidence < cut) & (answerable == 1)).sum() / answerable.sum()
    assert 0 < cut < 1 and false_abstention <= MAX_FALSE_ABSTENTION


def test_out_of_fold_confidence_comes_from_models_that_did_not_see_the_question():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(-1, 0.5, (30, 2)), rng.normal(1, 0.5, (30, 2))])
    y = np.array([0.0] * 30 + [1.0] * 30)
    confidence = out_of_fold_confidence(x, y)
    assert confidence.shape == (60,)
    assert (confidence[y == 1] > 0.5).mean() > 0.9 and (confidence[y == 0] < 0.5).mean() > 0.9
    x[0] = [5.0, 5.0]  # a mislabelled outlier: its own fold's model never saw it, so it looks answerable
    assert out_of_fold_confidence(x, y)[0] > 0.9
