"""Classical classifiers: kNN against scikit-learn, and the multiclass SVM loss."""

import warnings

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from keras_cv_course import applications
from keras_cv_course.applications.classification import knn
from keras_cv_course.errors import KCCError
from keras_cv_course.losses import MulticlassHinge

SKLEARN_METRIC = {"l1": "manhattan", "l2": "euclidean"}


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    images = (data.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1) in [0, 1]
    return images[:1437], data.target[:1437], images[1437:], data.target[1437:]


def _unique_neighbourhood(train, test, k, metric):
    """True where the k nearest neighbours are unique (no tie at the k-th distance)."""
    distances = np.sort(knn.pairwise_distances(test.reshape(len(test), -1),
                                               train.reshape(len(train), -1), metric,
                                               squared=True), axis=1)
    return distances[:, k - 1] < distances[:, k]


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_predictions_equal_sklearn(digits, metric, k):
    x_train, y_train, x_test, _ = digits
    ours = knn.knn_predict(x_train, y_train, x_test, k=k, metric=metric)
    reference = KNeighborsClassifier(k, metric=SKLEARN_METRIC[metric], algorithm="brute")
    theirs = reference.fit(x_train.reshape(len(x_train), -1), y_train).predict(
        x_test.reshape(len(x_test), -1))
    unique = _unique_neighbourhood(x_train, x_test, k, metric)
    # Where the k nearest are unique, kNN is well defined: predictions are equal.
    np.testing.assert_array_equal(ours[unique], theirs[unique])
    # Elsewhere scikit-learn picks among equally distant images by thread chunking.
    assert np.sum(ours != theirs) <= np.sum(~unique)
    assert np.mean(ours == theirs) >= 0.99


def test_keras_model_equals_numpy_and_sklearn_probabilities(digits):
    x_train, y_train, x_test, _ = digits
    for metric, k in (("l1", 3), ("l2", 5)):
        model = knn.KNNClassifier(memory_size=len(x_train), k=k, metric=metric)
        model.memorize(x_train, y_train)
        votes = model.predict(x_test, verbose=0)
        np.testing.assert_array_equal(votes.argmax(axis=1),
                                      knn.knn_predict(x_train, y_train, x_test, k, metric))
        reference = KNeighborsClassifier(k, metric=SKLEARN_METRIC[metric], algorithm="brute")
        proba = reference.fit(x_train.reshape(len(x_train), -1), y_train).predict_proba(
            x_test.reshape(len(x_test), -1))
        unique = _unique_neighbourhood(x_train, x_test, k, metric)
        np.testing.assert_allclose(votes[unique], proba[unique], atol=1e-6)


def test_choose_k_by_cross_validation(digits):
    x_train, y_train, _, _ = digits
    images, labels = x_train[:600], y_train[:600]
    ks = (1, 3, 7, 15)
    table = knn.cross_validate_k(images, labels, ks, folds=4, metric="l2")
    assert table.shape == (4, 4)
    for row, k in enumerate(ks):  # same folds as scikit-learn's unshuffled KFold
        theirs = cross_val_score(KNeighborsClassifier(k, algorithm="brute"),
                                 images.reshape(600, -1), labels, cv=KFold(4))
        np.testing.assert_allclose(table[row], theirs, atol=2 / 150)
    best = knn.choose_k(images, labels, ks, folds=4, metric="l2")
    assert best == ks[int(np.argmax(table.mean(axis=1)))]
    assert knn.choose_k(images, labels, (1, 2), folds=3, metric="l1") in (1, 2)


def test_tie_rules():
    train = np.array([[0.0], [2.0], [-2.0], [4.0]], "float32")
    labels = np.array([3, 1, 2, 0])
    # Query 1.0: images 0 and 1 are both at distance 1; the lower index (label 3) wins.
    assert knn.knn_predict(train, labels, np.array([[1.0]]), k=1)[0] == 3
    # k=2 at query 1.0 votes {3, 1}: a tie, broken towards the smaller class.
    assert knn.knn_predict(train, labels, np.array([[1.0]]), k=2)[0] == 1
    model = knn.KNNClassifier(input_shape=(1, 1, 1), memory_size=6, k=2, classes=4)
    model.memorize(train.reshape(4, 1, 1, 1), labels)
    votes = model.predict(np.array([[[[1.0]]]], "float32"), verbose=0)
    np.testing.assert_allclose(votes, [[0.0, 0.5, 0.0, 0.5]])


def test_registry_memorize_save_and_load(tmp_path):
    info = applications.get_info("knn")
    assert info.training == "memorize" and info.reference_params is None
    model = applications.build_tiny("knn")
    # The vote layer is the model's output, named as the classification task's output.
    assert isinstance(model.get_layer("predictions"), knn.NearestNeighborVote)
    assert model.output_names == [spec.name for spec in info.outputs] == ["predictions"]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(40, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 40)
    empty = model.predict(x[:2], verbose=0)
    np.testing.assert_array_equal(empty, 0.0)  # nothing memorised yet
    model.memorize(x, y)
    votes = model.predict(x, verbose=0)
    np.testing.assert_allclose(votes.sum(axis=1), 1.0)
    np.testing.assert_array_equal(votes.argmax(axis=1),
                                  knn.knn_predict(x, y, x, k=3, classes=10))
    path = str(tmp_path / "knn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), votes)
    assert hasattr(loaded, "memorize")
    clone = knn.KNNClassifier.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_memorize_errors_and_overflow():
    model = knn.KNNClassifier(input_shape=(2, 2, 1), memory_size=4, k=1, classes=3)
    with pytest.raises(KCCError, match="memorize expects"):
        model.memorize(np.zeros((3, 2, 2, 2)), [0, 1, 2])
    with pytest.raises(KCCError, match="labels"):
        model.memorize(np.zeros((2, 2, 2, 1)), [0, 5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.memorize(np.zeros((6, 2, 2, 1)), [0, 1, 2, 0, 1, 2])
    assert "dropping the last 2" in str(caught[0].message)
    with pytest.raises(KCCError, match="metric"):
        knn.KNNClassifier(metric="cosine")
    with pytest.raises(KCCError, match="k must"):
        knn.KNNClassifier(memory_size=2, k=3)


# --- multiclass SVM loss -------------------------------------------------------------------


def _hinge_loop(labels, scores, margin=1.0):
    losses = []
    for label, row in zip(labels, scores, strict=True):
        losses.append(sum(max(0.0, row[j] - row[label] + margin)
                          for j in range(len(row)) if j != label))
    return np.mean(losses)


def test_multiclass_hinge_values():
    # The CS231n example: three images, scores for (cat, car, frog).
    scores = np.array([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]], "float32")
    labels = np.array([0, 1, 2])
    loss = MulticlassHinge()
    assert float(loss(labels, scores)) == pytest.approx((2.9 + 0.0 + 12.9) / 3, rel=1e-5)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(16, 7)).astype("float32")
    labels = rng.integers(0, 7, 16)
    assert float(loss(labels, scores)) == pytest.approx(_hinge_loop(labels, scores), rel=1e-5)
    one_hot = np.eye(7)[labels]
    assert float(loss(one_hot, scores)) == pytest.approx(_hinge_loop(labels, scores), rel=1e-5)
    assert float(loss(labels[:, None], scores)) == pytest.approx(_hinge_loop(labels, scores),
                                                                 rel=1e-5)
    restored = MulticlassHinge.from_config(MulticlassHinge(margin=2.0).get_config())
    assert restored.margin == 2.0


def test_linear_svm_trains_with_its_loss(tmp_path):
    info = applications.get_info("linear_svm")
    model = applications.build_tiny("linear_svm")
    assert model.layers[-1].activation is keras.activations.linear
    model.compile(optimizer="sgd", loss=info.loss())
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 32)
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = str(tmp_path / "svm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, MulticlassHinge)
