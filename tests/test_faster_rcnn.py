"""Faster R-CNN: torchvision's count, the RPN and the RoI head by hand, training, decoding.

The hand cases use 32x32 images and boxes whose IoUs are easy to write down. The harness
(``tests/test_models.py``) builds, trains a step, saves, loads and exports the tiny model
end to end; here are the parts it cannot see.
"""

import math

import keras
import numpy as np
import pytest

from keras_cv_course import applications
from keras_cv_course.applications.detection.faster_rcnn import LOSS_NAMES, FasterRCNNHead
from keras_cv_course.detection import feature_pyramid
from keras_cv_course.detection.head import detection_head
from keras_cv_course.detection.nms import NonMaxSuppression
from keras_cv_course.detection.roi_heads import fast_rcnn_losses, sample_proposals
from keras_cv_course.detection.rpn import ProposalLayer, balanced_sample, rpn_losses, smooth_l1

NAME = "fasterrcnn_resnet50_fpn"


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def logit(p):
    return math.log(p / (1 - p))


# Full size: exactly torchvision's count, part by part ------------------------------------------

def layer_parameters(model, *names):
    return sum(int(np.prod(w.shape)) for name in names for w in model.get_layer(name).weights)


def test_full_size_parameter_count_equals_torchvision_part_by_part():
    model = applications.build_full(NAME)
    assert applications.parameter_count(model) == 41_755_286
    # RPNHead: 3x3 conv 256->256, 1x1 to 3 logits and to 12 offsets.
    assert layer_parameters(model, "rpn_conv", "rpn_cls_logits", "rpn_bbox_pred") == (
        256 * 256 * 9 + 256 + 256 * 3 + 3 + 256 * 12 + 12)
    # TwoMLPHead on 256 x 7 x 7, then FastRCNNPredictor over 91 outputs (90 + background).
    assert layer_parameters(model, "box_head_fc6", "box_head_fc7") == (
        256 * 49 * 1024 + 1024 + 1024 * 1024 + 1024)
    assert layer_parameters(model, "box_predictor_cls_score", "box_predictor_bbox_pred") == (
        1024 * 91 + 91 + 1024 * 364 + 364)
    assert detection_head(model).num_classes == 90
    assert model.output.shape == (None, 1000, 4 + 1 + 91 + 364)


# The FPN's extra level ----------------------------------------------------------------------

def test_pool_level_is_p5_subsampled():
    inputs = [keras.Input((size, size, 8)) for size in (8, 4, 2)]
    pyramid = feature_pyramid(dict(zip(("C3", "C4", "C5"), inputs)), channels=4,
                              extra_levels="pool")
    assert list(pyramid) == ["P3", "P4", "P5", "P6"]
    model = keras.Model(inputs, [pyramid["P5"], pyramid["P6"]])
    rng = np.random.default_rng(0)
    p5, p6 = model.predict([rng.normal(size=(1, s, s, 8)) for s in (8, 4, 2)], verbose=0)
    np.testing.assert_array_equal(p6, p5[:, ::2, ::2])


# The RPN ------------------------------------------------------------------------------------

ANCHORS = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30],  # level 0
                    [0, 0, 12, 12], [20, 20, 32, 32]], "float32")  # level 1


def test_proposals_are_top_k_per_level_then_nms_within_each_level():
    layer = ProposalLayer(ANCHORS, level_counts=(3, 2), image_size=(32, 32), pre_nms_top_n=2,
                          post_nms_top_n=4)
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]])
    found = layer(np.array([[logit(p) for p in scores[0]]], "float32"),
                  np.zeros((1, 5, 4), "float32"))
    # Level 0 keeps its two best (anchors 0 and 1); anchor 1 overlaps anchor 0 by
    # IoU 81 / 119 = 0.68 < 0.7, so both stay. Level 1's anchor 3 overlaps anchor 0 by
    # 100 / 144 = 0.69, but levels never suppress each other anyway.
    np.testing.assert_allclose(numpy(found["boxes"])[0], ANCHORS[[0, 1, 3, 4]], atol=1e-5)
    np.testing.assert_allclose(numpy(found["scores"])[0], [0.9, 0.8, 0.6, 0.5], atol=1e-6)
    assert int(numpy(found["num"])[0]) == 4


def test_proposals_suppress_within_a_level_and_pad_the_rest():
    layer = ProposalLayer(ANCHORS, level_counts=(3, 2), image_size=(32, 32), pre_nms_top_n=3,
                          post_nms_top_n=6)
    offsets = np.zeros((1, 5, 4), "float32")
    offsets[0, 1] = [-0.1, -0.1, 0.0, 0.0]  # anchor 1 moved onto anchor 0: IoU 1
    found = layer(np.array([[logit(p) for p in (0.9, 0.8, 0.7, 0.6, 0.5)]], "float32"),
                  offsets)
    assert int(numpy(found["num"])[0]) == 4  # 5 candidates, one suppressed
    np.testing.assert_allclose(numpy(found["scores"])[0], [0.9, 0.7, 0.6, 0.5, 0, 0],
                               atol=1e-6)
    np.testing.assert_array_equal(numpy(found["boxes"])[0, 4:], 0.0)


def test_proposals_are_clipped_to_the_image():
    layer = ProposalLayer(ANCHORS[:1] + np.float32([-5, -5, 5, 5]), level_counts=(1,),
                          image_size=(32, 32), pre_nms_top_n=1, post_nms_top_n=1)
    found = layer(np.zeros((1, 1), "float32"), np.zeros((1, 1, 4), "float32"))
    np.testing.assert_allclose(numpy(found["boxes"])[0, 0], [0, 0, 15, 15])


def test_balanced_sample_caps_positives_and_fills_with_negatives():
    positive = np.zeros((2, 40), bool)
    negative = np.zeros((2, 40), bool)
    positive[0, :10], negative[0, 10:] = True, True  # many positives
    positive[1, :2], negative[1, 2:30] = True, True  # few positives
    seed = keras.random.SeedGenerator(0)
    chosen_positive, chosen_negative = (numpy(m) for m in balanced_sample(
        positive, negative, samples_per_image=16, positive_fraction=0.25, seed=seed))
    assert chosen_positive.sum(axis=1).tolist() == [4, 2]
    assert chosen_negative.sum(axis=1).tolist() == [12, 14]
    assert not (chosen_positive & ~positive).any() and not (chosen_negative & ~negative).any()


def test_rpn_losses_by_hand():
    # One object equal to anchor 2; anchors 0, 1 and 3 are background (IoU 0); anchor 4
    # overlaps it by 100 / 144 = 0.69, between 0.3 and 0.7: ignored.
    gt_boxes = np.array([[[20, 20, 30, 30]]], "float32")
    gt_classes = np.array([[1]], "int32")
    logits = np.zeros((1, 5), "float32")
    offsets = np.zeros((1, 5, 4), "float32")
    offsets[0, 2] = [0.2, 0.0, 0.0, 0.0]
    objectness, box = rpn_losses(logits, offsets, ANCHORS, gt_boxes, gt_classes, seed=0)
    # Sampled: anchor 2 (positive), 0, 1 and 3 (negative): BCE at logit 0 is log 2 each.
    assert float(objectness) == pytest.approx(math.log(2), rel=1e-5)
    # Smooth L1 (beta 1/9) of 0.2 is 0.2 - 1/18, over four sampled anchors.
    assert float(box) == pytest.approx((0.2 - 0.5 / 9) / 4, rel=1e-5)


def test_smooth_l1_is_quadratic_below_beta():
    values = numpy(smooth_l1(np.array([0.05, -0.05, 0.5], "float32"), beta=0.1))
    np.testing.assert_allclose(values, [0.0125, 0.0125, 0.45], rtol=1e-6)


# The RoI head -------------------------------------------------------------------------------

def test_ground_truth_joins_the_proposals_as_a_foreground_roi():
    proposals = np.zeros((1, 3, 4), "float32")
    proposals[0, 0] = [0, 0, 8, 8]  # background: IoU 0 with the object
    gt_boxes = np.array([[[16, 16, 28, 28], [-1, -1, -1, -1]]], "float32")
    gt_classes = np.array([[2, -1]], "int32")
    sample = sample_proposals(proposals, np.array([1]), gt_boxes, gt_classes, seed=0,
                              samples_per_image=4, positive_fraction=0.5)
    weights = numpy(sample["weights"])[0]
    labels = numpy(sample["labels"])[0][weights > 0]
    rois = numpy(sample["rois"])[0][weights > 0]
    assert sorted(labels.tolist()) == [0, 3]  # the background proposal; the object, class 2 + 1
    np.testing.assert_allclose(rois[labels == 3][0], [16, 16, 28, 28])
    np.testing.assert_allclose(numpy(sample["targets"])[0][weights > 0][labels == 3][0], 0.0,
                               atol=1e-6)
    assert weights.sum() == 2  # two padding proposals are never sampled


def test_fast_rcnn_losses_by_hand():
    classes = 3  # + background = 4 outputs
    logits = np.zeros((1, 2, classes + 1), "float32")
    offsets = np.zeros((1, 2, 4 * (classes + 1)), "float32")
    offsets[0, 0, 4 * 2:4 * 3] = [1.0, 0, 0, 0]  # RoI 0's offsets for its class (label 2)
    offsets[0, 1, 4 * 2:4 * 3] = [5.0, 5, 5, 5]  # background RoI: never regressed
    labels = np.array([[2, 0]], "int32")
    targets = np.zeros((1, 2, 4), "float32")
    classifier, box = fast_rcnn_losses(logits, offsets, labels, targets, np.ones((1, 2)))
    assert float(classifier) == pytest.approx(math.log(4), rel=1e-6)
    assert float(box) == pytest.approx((1.0 - 0.5 / 9) / 2, rel=1e-6)


def test_head_decodes_class_specific_boxes_and_silences_padding():
    head = FasterRCNNHead((32, 32), 2)
    proposals = np.array([[[4, 4, 12, 12], [0, 0, 0, 0]]], "float32")
    logits = np.array([[[0.0, math.log(3.0), 0.0], [0.0, 5.0, 0.0]]], "float32")
    offsets = np.zeros((1, 2, 12), "float32")
    offsets[0, 0, 8:12] = [10.0, 0, 0, 0]  # class 1 (output 2) moves one box width right
    raw = head(proposals, np.array([1]), logits, offsets)
    boxes, scores = (numpy(t) for t in head.decode(raw))
    assert boxes.shape == (1, 2, 2, 4) and scores.shape == (1, 2, 2)
    np.testing.assert_allclose(boxes[0, 0, 0], [4, 4, 12, 12], atol=1e-5)
    np.testing.assert_allclose(boxes[0, 0, 1], [12, 4, 20, 12], atol=1e-5)
    np.testing.assert_allclose(scores[0, 0], [0.6, 0.2], atol=1e-6)  # softmax of 0, log 3, 0
    np.testing.assert_array_equal(scores[0, 1], 0.0)


def test_nms_keeps_each_class_its_own_box():
    boxes = np.zeros((1, 1, 2, 4), "float32")
    boxes[0, 0] = [[0, 0, 10, 10], [20, 20, 30, 30]]
    scores = np.array([[[0.9, 0.8]]], "float32")
    found = NonMaxSuppression(max_detections=3)(boxes, scores)
    np.testing.assert_allclose(numpy(found["boxes"])[0, :2], boxes[0, 0])
    assert numpy(found["classes"])[0].tolist() == [0, 1, -1]


# Training on shapes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    """The tiny model after two epochs on 256 shapes images, and its history."""
    from keras_cv_course.data import load_dataset
    from keras_cv_course.tasks import get_task

    images, objects = load_dataset("shapes", task="detection").arrays["train"]
    keras.utils.set_random_seed(0)
    model = applications.build_tiny(NAME)
    get_task("detection").compile(model, make_optimizer=lambda: keras.optimizers.Adam(1e-3))
    history = model.fit(images[:256], objects[:256], batch_size=32, epochs=2, verbose=0)
    return model, history.history, images[:8]


def test_each_loss_is_logged_and_the_sum_falls(trained):
    _, history, _ = trained
    assert set(LOSS_NAMES) <= set(history)
    total = [sum(history[name][epoch] for name in LOSS_NAMES) for epoch in range(2)]
    np.testing.assert_allclose(history["loss"], total, rtol=1e-4)
    assert history["loss"][1] < history["loss"][0]


def test_call_is_deterministic_and_training_is_not_its_business(trained):
    model, _, images = trained
    first, second = model.predict(images, verbose=0), model.predict(images, verbose=0)
    np.testing.assert_array_equal(first, second)
    assert not any(isinstance(layer, ProposalLayer) and layer.name == "train_proposals"
                   for layer in model.layers)  # the sampling path is not in the graph
