"""The shared detection parts: known values, torchvision conventions, export lowering."""

import functools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cv_course import detection as det
from tests.jax_runner import run_on_jax


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def random_boxes(rng, shape, low=0.0, high=80.0, min_size=4.0, max_size=30.0):
    corner = rng.uniform(low, high, (*shape, 2))
    size = rng.uniform(min_size, max_size, (*shape, 2))
    return np.concatenate([corner, corner + size], axis=-1).astype("float32")


# Boxes ----------------------------------------------------------------------------------------

def test_box_formats_convert_both_ways():
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0]], "float32")
    expected = {"xyxy": [10, 20, 30, 60], "xywh": [10, 20, 20, 40],
                "cxcywh": [20, 40, 20, 40], "yxyx": [20, 10, 60, 30]}
    for box_format, value in expected.items():
        converted = det.from_xyxy(xyxy, box_format)
        np.testing.assert_allclose(numpy(converted), [value])
        np.testing.assert_allclose(numpy(det.to_xyxy(converted, box_format)), xyxy)
    np.testing.assert_allclose(numpy(det.convert_format([[20, 40, 20, 40.0]], "cxcywh", "xywh")),
                               [[10, 20, 20, 40]])
    with pytest.raises(ValueError, match="box format"):
        det.to_xyxy(xyxy, "ltrb")


def test_area_centres_and_clipping():
    boxes = np.array([[-5.0, 10.0, 50.0, 30.0], [4.0, 4.0, 2.0, 8.0]], "float32")
    np.testing.assert_allclose(numpy(det.box_area(boxes)), [55 * 20, 0])  # inverted box: 0
    np.testing.assert_allclose(numpy(det.box_centers(boxes))[0], [22.5, 20])
    clipped = det.clip_to_image(boxes, image_size=(25, 40))  # (height, width)
    np.testing.assert_allclose(numpy(clipped)[0], [0, 10, 40, 25])


# IoU family -----------------------------------------------------------------------------------

def test_iou_family_on_hand_computed_cases():
    # Case 1: two 2x2 squares overlapping in a 1x1 square. Union 7, enclosing 3x3 box
    # (area 9, squared diagonal 18), centres (1, 1) and (2, 2): rho^2 = 2. Same aspect: v = 0.
    a, b = [[0.0, 0.0, 2.0, 2.0]], [[1.0, 1.0, 3.0, 3.0]]
    np.testing.assert_allclose(numpy(det.aligned_iou(a, b)), [1 / 7], rtol=1e-6)
    np.testing.assert_allclose(numpy(det.aligned_giou(a, b)), [1 / 7 - 2 / 9], rtol=1e-5)
    np.testing.assert_allclose(numpy(det.aligned_diou(a, b)), [1 / 7 - 2 / 18], rtol=1e-5)
    np.testing.assert_allclose(numpy(det.aligned_ciou(a, b)), [1 / 7 - 2 / 18], rtol=1e-5)
    # Case 2: a 2x2 prediction inside a 4x2 target. IoU 4/8; the enclosing box is the
    # target (GIoU = IoU, c^2 = 20); centres (1, 1) and (2, 1): rho^2 = 1;
    # v = 4/pi^2 (atan 2 - atan 1)^2 and alpha = v / (1 - IoU + v).
    pred, target = [[0.0, 0.0, 2.0, 2.0]], [[0.0, 0.0, 4.0, 2.0]]
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    alpha = v / (0.5 + v)
    np.testing.assert_allclose(numpy(det.aspect_ratio_term(np.array(pred), np.array(target))),
                               [v], rtol=1e-5)
    np.testing.assert_allclose(numpy(det.aligned_giou(pred, target)), [0.5], rtol=1e-6)
    np.testing.assert_allclose(numpy(det.aligned_diou(pred, target)), [0.5 - 1 / 20], rtol=1e-6)
    np.testing.assert_allclose(numpy(det.aligned_ciou(pred, target)),
                               [0.5 - 1 / 20 - alpha * v], rtol=1e-6)  # 0.44675...
    # Case 3: disjoint boxes: IoU 0, GIoU negative.
    np.testing.assert_allclose(numpy(det.aligned_giou([[0, 0, 1, 1.0]], [[2, 0, 3, 1.0]])),
                               [-1 / 3], rtol=1e-6)


def test_pairwise_iou_matches_aligned_iou_and_batches():
    rng = np.random.default_rng(0)
    boxes1, boxes2 = random_boxes(rng, (2, 5)), random_boxes(rng, (2, 7))
    matrix = numpy(det.pairwise_iou(boxes1, boxes2))
    assert matrix.shape == (2, 5, 7)
    expected = numpy(det.aligned_iou(boxes1[:, :, None], boxes2[:, None]))
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(numpy(det.pairwise_iou(boxes1[0], boxes1[0])).diagonal(), 1.0,
                               rtol=1e-6)


# Anchors --------------------------------------------------------------------------------------

def test_retinanet_anchors_follow_torchvision():
    sizes = det.retinanet_sizes()
    assert sizes[0] == (32, 40, 50) and sizes[-1] == (512, 645, 812)  # int() truncation
    generator = det.AnchorGenerator(sizes, (0.5, 1.0, 2.0))
    grids = det.feature_sizes((512, 512), (8, 16, 32, 64, 128))
    anchors = generator((512, 512), grids)
    assert generator.num_anchors_per_location() == [9] * 5
    assert generator.level_counts(grids) == [64 * 64 * 9, 32 * 32 * 9, 16 * 16 * 9, 64 * 9, 16 * 9]
    assert anchors.shape == (49104, 4) and anchors.dtype == np.float32
    # Cell anchors of P3, aspect ratio (h / w) major, rounded like torch.round:
    # ratio 0.5, size 32: w = 32 / sqrt(0.5) = 45.25 -> +-22.6 -> 23; h = 22.6 -> +-11.3 -> 11.
    np.testing.assert_array_equal(anchors[:9], [
        [-23, -11, 23, 11], [-28, -14, 28, 14], [-35, -18, 35, 18],
        [-16, -16, 16, 16], [-20, -20, 20, 20], [-25, -25, 25, 25],
        [-11, -23, 11, 23], [-14, -28, 14, 28], [-18, -35, 18, 35]])
    # Order (level, y, x, anchor): the next 9 are the cell at x = 8 (stride * 1, no half-cell
    # offset), and the first anchor of the second row sits at y = 8.
    np.testing.assert_array_equal(anchors[9], [-15, -11, 31, 11])
    np.testing.assert_array_equal(anchors[64 * 9], [-23, -3, 23, 19])
    np.testing.assert_array_equal(anchors[64 * 64 * 9], [-45, -23, 45, 23])  # P4, size 64


def test_torchvision_strides_come_from_integer_division():
    # An 800-pixel image gives a 13-cell P6 grid, so torchvision's stride is 800 // 13 = 61.
    generator = det.AnchorGenerator([(256,)], (1.0,))
    anchors = generator((800, 800), [(13, 13)])
    np.testing.assert_array_equal(anchors[1] - anchors[0], [61, 0, 61, 0])


def test_anchor_points_for_fcos_and_yolov8():
    # torchvision's FCOS: one anchor per cell, its size the stride: centres at stride * i.
    fcos = det.AnchorGenerator(det.FCOS_SIZES, (1.0,))
    grids = det.feature_sizes((64, 64), (8, 16, 32, 64, 128))
    boxes = fcos((64, 64), grids)
    np.testing.assert_array_equal(boxes[:2], [[-4, -4, 4, 4], [4, -4, 12, 4]])
    points, strides = det.anchor_points(grids, (8, 16, 32, 64, 128), offset=0.0)
    np.testing.assert_array_equal(points, numpy(det.box_centers(boxes)))
    assert points.shape == (64 + 16 + 4 + 1 + 1, 2) and strides[-1] == 128
    # YOLOv8: cell centres, (i + 0.5) * stride, row-major.
    points, strides = det.anchor_points([(2, 3)], (8,))
    np.testing.assert_array_equal(points, [[4, 4], [12, 4], [20, 4], [4, 12], [12, 12], [20, 12]])
    np.testing.assert_array_equal(strides, [8] * 6)


# Coders ---------------------------------------------------------------------------------------

def test_box_coder_known_value_round_trip_and_clip():
    anchors = np.array([[0.0, 0.0, 10.0, 10.0]], "float32")
    boxes = np.array([[5.0, 5.0, 25.0, 45.0]], "float32")  # centre moves (10, 20), size x2, x4
    coder = det.BoxCoder(det.FASTER_RCNN_HEAD_WEIGHTS)
    np.testing.assert_allclose(numpy(coder.encode(boxes, anchors)),
                               [[10 * 1.0, 10 * 2.0, 5 * math.log(2), 5 * math.log(4)]], rtol=1e-6)
    rng = np.random.default_rng(1)
    anchors, boxes = random_boxes(rng, (3, 50)), random_boxes(rng, (3, 50))
    for weights in (det.RETINANET_WEIGHTS, det.FASTER_RCNN_HEAD_WEIGHTS):
        coder = det.BoxCoder(weights)
        np.testing.assert_allclose(numpy(coder.decode(coder.encode(boxes, anchors), anchors)),
                                   boxes, atol=1e-3)
    assert det.BoxCoder(**coder.get_config()).get_config() == coder.get_config()
    # A huge log-scale is clipped at log(1000 / 16): the width grows at most 62.5 times.
    decoded = det.BoxCoder().decode([[0.0, 0.0, 50.0, 0.0]], [[0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(numpy(decoded)[0, 2] - numpy(decoded)[0, 0], 625.0, rtol=1e-5)


def test_distance_coder_known_value_and_round_trip():
    points = np.array([[12.0, 20.0]], "float32")
    boxes = np.array([[10.0, 4.0, 30.0, 24.0]], "float32")
    np.testing.assert_allclose(numpy(det.boxes_to_distances(points, boxes)), [[2, 16, 18, 4]])
    np.testing.assert_allclose(numpy(det.boxes_to_distances(points, boxes, scale=[2.0])),
                               [[1, 8, 9, 2]])
    distances = numpy(det.boxes_to_distances(points, boxes, scale=8.0))
    np.testing.assert_allclose(numpy(det.distances_to_boxes(points, distances, 8.0)), boxes)


# Matching -------------------------------------------------------------------------------------

def test_matcher_thresholds_low_quality_and_padding():
    quality = np.array([[[0.90, 0.45, 0.30, 0.10, 0.0],     # box 0
                         [0.20, 0.30, 0.35, 0.38, 0.0],     # box 1: its best anchor is 3
                         [0.95, 0.99, 0.99, 0.99, 0.99]],   # padding: must never win
                        [[0.60, 0.00, 0.00, 0.00, 0.0],
                         [0.00, 0.00, 0.00, 0.00, 0.0],     # a box touching no anchor
                         [0.90, 0.90, 0.90, 0.90, 0.9]]], "float32")
    valid = det.gt_validity([[3, 7, -1], [1, 2, -1]])
    plain = numpy(det.Matcher(0.5, 0.4)(quality, valid))
    np.testing.assert_array_equal(plain, [[0, -2, -1, -1, -1], [0, -1, -1, -1, -1]])
    low_quality = numpy(det.Matcher(0.5, 0.4, allow_low_quality_matches=True)(quality, valid))
    np.testing.assert_array_equal(low_quality, [[0, -2, -1, 1, -1], [0, -1, -1, -1, -1]])
    no_boxes = numpy(det.Matcher(0.5, 0.4, True)(quality, det.gt_validity([[-1] * 3] * 2)))
    assert (no_boxes == det.BELOW_LOW_THRESHOLD).all()
    assert det.Matcher(0.5, 0.4, True).get_config() == {
        "high_threshold": 0.5, "low_threshold": 0.4, "allow_low_quality_matches": True}
    with pytest.raises(ValueError, match="low_threshold"):
        det.Matcher(0.4, 0.5)


def test_match_anchors_on_boxes():
    anchors = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [30, 30, 40, 40.0]], "float32")
    gt_boxes = np.array([[[0, 0, 10, 10], [11, 0, 20, 10], [-1, -1, -1, -1.0]]], "float32")
    matches = det.match_anchors(anchors, gt_boxes, [[0, 1, -1]], det.Matcher(0.5, 0.4))
    np.testing.assert_array_equal(numpy(matches), [[0, 1, -1]])  # IoU 1, 0.9, 0


def test_task_aligned_assigner_on_hand_built_case():
    # Four points on a row; box 0 holds points 0-1, box 1 holds points 1-3; row 2 is padding
    # (class -1) with a box that holds every point. Predicted box IoUs with box 0: 1, 1/3;
    # with box 1: 2/3, 2/3, 1/3. All scores 0.5, so the metric is 0.5 * IoU^6.
    points = np.array([[5, 5], [15, 5], [25, 5], [35, 5.0]], "float32")
    gt_boxes = np.array([[[0, 0, 20, 10], [10, 0, 40, 10], [0, 0, 40, 10.0]]], "float32")
    gt_classes = np.array([[0, 1, -1]])
    pred_boxes = np.array([[[0, 0, 20, 10], [10, 0, 30, 10], [20, 0, 40, 10],
                            [30, 0, 40, 10.0]]], "float32")
    pred_scores = np.full((1, 4, 2), 0.5, "float32")
    out = det.task_aligned_assign(pred_scores, pred_boxes, points, gt_classes, gt_boxes, topk=2)
    # Top-2: box 0 takes points 0, 1; box 1 takes points 1, 2. Point 1 goes to box 1
    # (IoU 2/3 > 1/3). Targets: box 0's best anchor IoU 1; box 1's, 2/3.
    np.testing.assert_array_equal(numpy(out["foreground"]), [[True, True, True, False]])
    np.testing.assert_array_equal(numpy(out["gt_index"]), [[0, 1, 1, 0]])
    np.testing.assert_array_equal(numpy(out["classes"]), [[0, 1, 1, -1]])
    np.testing.assert_allclose(numpy(out["boxes"])[0], [gt_boxes[0, 0], gt_boxes[0, 1],
                                                        gt_boxes[0, 1], [0, 0, 0, 0]])
    np.testing.assert_allclose(numpy(out["scores"])[0], [[1, 0], [0, 2 / 3], [0, 2 / 3], [0, 0]],
                               rtol=1e-5)
    graph = tf.function(functools.partial(det.task_aligned_assign, topk=2), input_signature=[
        tf.TensorSpec((None, 4, 2)), tf.TensorSpec((None, 4, 4)), tf.TensorSpec((4, 2)),
        tf.TensorSpec((None, 3), tf.int32), tf.TensorSpec((None, 3, 4))])
    in_graph = graph(pred_scores, pred_boxes, points, gt_classes, gt_boxes)  # dynamic batch
    np.testing.assert_array_equal(in_graph["gt_index"].numpy(), numpy(out["gt_index"]))
    ciou = det.task_aligned_assign(pred_scores, pred_boxes, points, gt_classes, gt_boxes,
                                   topk=2, overlap="ciou")
    np.testing.assert_array_equal(numpy(ciou["foreground"]), [[True, True, True, False]])


# Losses ---------------------------------------------------------------------------------------

def test_focal_loss_equals_keras_with_class_balancing():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(4, 10, 5)).astype("float32")
    labels = (rng.random((4, 10, 5)) < 0.2).astype("float32")
    keras_loss = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=0.25, gamma=2.0, from_logits=True, reduction="sum")
    # Keras averages over the last (class) axis before summing; detectors sum everything.
    expected = float(keras_loss(labels, logits)) * labels.shape[-1]
    np.testing.assert_allclose(float(det.sigmoid_focal_loss(labels, logits)), expected, rtol=1e-5)
    normalised = det.sigmoid_focal_loss(labels, logits, normalizer=labels.sum())
    np.testing.assert_allclose(float(normalised), expected / labels.sum(), rtol=1e-5)
    # Without class balancing Keras gives a different (larger-on-negatives) loss.
    unbalanced = keras.losses.BinaryFocalCrossentropy(gamma=2.0, from_logits=True,
                                                      reduction="sum")(labels, logits)
    assert abs(float(unbalanced) * labels.shape[-1] - expected) > 1.0


def test_distribution_focal_loss_hand_value():
    # Softmax of log(1, 2, 3, 2) is (1, 2, 3, 2) / 8. A target of 1.25 lies between bins 1
    # and 2 with weights 0.75 and 0.25: loss = -(0.75 log(2/8) + 0.25 log(3/8)) = 1.284928.
    logits = np.log(np.array([[1.0, 2.0, 3.0, 2.0]], "float32"))
    loss = det.distribution_focal_loss([1.25], logits, reduction="none")
    expected = -(0.75 * math.log(0.25) + 0.25 * math.log(0.375))
    np.testing.assert_allclose(numpy(loss), [expected], rtol=1e-6)
    np.testing.assert_allclose(expected, 1.284928, rtol=1e-6)
    on_bin = det.distribution_focal_loss([2.0], logits, reduction="none")
    np.testing.assert_allclose(numpy(on_bin), [-math.log(3 / 8)], rtol=1e-6)


def test_iou_losses():
    pred, target = [[0.0, 0.0, 2.0, 2.0]], [[0.0, 0.0, 4.0, 2.0]]
    v = 4 / math.pi**2 * (math.atan(2.0) - math.atan(1.0)) ** 2
    np.testing.assert_allclose(float(det.giou_loss(pred, target)), 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(det.diou_loss(pred, target)), 0.55, rtol=1e-6)
    np.testing.assert_allclose(float(det.ciou_loss(pred, target)), 0.55 + v * v / (0.5 + v),
                               rtol=1e-6)
    np.testing.assert_allclose(float(det.giou_loss(pred * 2, target * 2, "mean", 0)), 0.5)
    with pytest.raises(ValueError, match="reduction"):
        det.giou_loss(pred, target, reduction="max")


# FPN ------------------------------------------------------------------------------------------

def pyramid_inputs(spatial=(None, None)):
    return {f"C{k}": keras.Input((*spatial, c), name=f"C{k}")
            for k, c in ((3, 512), (4, 1024), (5, 2048))}


def test_fpn_with_p6p7_has_torchvision_parameter_count():
    inputs = pyramid_inputs()
    outputs = det.feature_pyramid(inputs, channels=256, extra_levels="p5")
    model = keras.Model(inputs, outputs)
    # torchvision FeaturePyramidNetwork([512, 1024, 2048], 256) + LastLevelP6P7(256, 256), as in
    # retinanet_resnet50_fpn and fcos_resnet50_fpn: 1x1 laterals with bias, 3x3 outputs with
    # bias, P6 and P7 3x3 convs with bias (from P5, 256 channels in).
    laterals = (512 + 1024 + 2048) * 256 + 3 * 256  # 918,272
    level_outputs = 3 * (9 * 256 * 256 + 256)  # 1,770,240
    p6_p7 = 2 * (9 * 256 * 256 + 256)  # 1,180,160
    assert laterals + level_outputs + p6_p7 == 3_868_672
    assert model.count_params() == 3_868_672
    # Cross-check with torchvision's totals: retinanet_resnet50_fpn has 34,014,999 parameters:
    # the ResNet-50 trunk's convolutions (23,454,912; FrozenBatchNorm has none), the FPN, and
    # the head (4 + 4 towers of 590,080, cls 9*91 outputs, box 9*4 outputs).
    head = 8 * 590_080 + (2304 * 819 + 819) + (2304 * 36 + 36)
    assert 23_454_912 + 3_868_672 + head == 34_014_999
    names = {layer.name for layer in model.layers}
    assert {"fpn_lateral3", "fpn_lateral5", "fpn_output3", "fpn_output5", "fpn_p6",
            "fpn_p7"} <= names
    assert list(outputs) == ["P3", "P4", "P5", "P6", "P7"]


def test_fpn_shapes_odd_grids_c5_source_and_pan():
    inputs = pyramid_inputs()
    from_c5 = keras.Model(inputs, det.feature_pyramid(inputs, 256, extra_levels="c5", name="f"))
    assert from_c5.get_layer("f_p6").count_params() == 9 * 2048 * 256 + 256
    # A 100-pixel image gives grids 13, 7, 4: upsampling crops to the odd grid.
    inputs = pyramid_inputs()
    sized = [keras.layers.Resizing(s, s)(t) for s, t in zip((13, 7, 4), inputs.values())]
    outputs = det.feature_pyramid(sized, channels=32, extra_levels="p5", pan=True)
    assert list(outputs) == ["P3", "P4", "P5", "P6", "P7", "N3", "N4", "N5", "N6", "N7"]
    shapes = {key: tuple(tensor.shape[1:3]) for key, tensor in outputs.items()}
    assert shapes == {"P3": (13, 13), "P4": (7, 7), "P5": (4, 4), "P6": (2, 2), "P7": (1, 1),
                      "N3": (13, 13), "N4": (7, 7), "N5": (4, 4), "N6": (2, 2), "N7": (1, 1)}
    # Nearest 2x upsampling then cropping equals resizing with floor indices (torchvision).
    model = keras.Model(inputs, outputs["P3"])
    upsample, crop = model.get_layer("fpn_upsample3"), model.get_layer("fpn_upsample3_crop")
    value = np.arange(49, dtype="float32").reshape(1, 7, 7, 1)
    rows = np.floor(np.arange(13) * 7 / 13).astype(int)
    np.testing.assert_array_equal(numpy(crop(upsample(value))), value[:, rows][:, :, rows])
    with pytest.raises(ValueError, match="extra_levels"):
        det.feature_pyramid(pyramid_inputs(), extra_levels="p6")


# NMS ------------------------------------------------------------------------------------------

def reference_nms(boxes, scores, iou_threshold, score_threshold, max_detections):
    """Per-class ``tf.image.non_max_suppression`` of one image, merged by score."""
    found = []
    for c in range(scores.shape[-1]):
        keep = tf.image.non_max_suppression(boxes, scores[:, c], len(boxes), iou_threshold,
                                            score_threshold).numpy()
        found += [(scores[i, c], c, i) for i in keep]
    found = sorted(found, key=lambda item: -item[0])[:max_detections]
    return (np.array([boxes[i] for _, _, i in found]).reshape(-1, 4),
            np.array([s for s, _, _ in found]), np.array([c for _, c, _ in found]))


def nms_case(seed, batch=2, num_boxes=60, num_classes=3):
    rng = np.random.default_rng(seed)
    return (random_boxes(rng, (batch, num_boxes)),
            rng.random((batch, num_boxes, num_classes)).astype("float32"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_implementations_agree_with_tf_reference(seed):
    boxes, scores = nms_case(seed)
    settings = dict(iou_threshold=0.45, score_threshold=0.2, max_detections=40,
                    pre_nms_topk=scores.shape[1] * scores.shape[2])
    results = [det.NonMaxSuppression(**settings, implementation=impl)(boxes, scores)
               for impl in ("keras", "tensorflow", "auto")]
    results = [{key: numpy(value) for key, value in out.items()} for out in results]
    for other in results[1:]:
        for key in ("boxes", "scores", "classes", "num_detections"):
            np.testing.assert_array_equal(results[0][key], other[key])
    for b in range(len(boxes)):
        ref_boxes, ref_scores, ref_classes = reference_nms(boxes[b], scores[b], 0.45, 0.2, 40)
        n = results[0]["num_detections"][b]
        assert n == len(ref_scores)
        np.testing.assert_allclose(results[0]["boxes"][b, :n], ref_boxes)
        np.testing.assert_allclose(results[0]["scores"][b, :n], ref_scores)
        np.testing.assert_array_equal(results[0]["classes"][b, :n], ref_classes)
        assert (results[0]["classes"][b, n:] == -1).all()
        assert (results[0]["scores"][b, n:] == 0).all()


def test_nms_pre_topk_padding_and_config():
    boxes, scores = nms_case(3, batch=1, num_boxes=8, num_classes=2)
    layer = det.NonMaxSuppression(0.5, 0.0, max_detections=30, pre_nms_topk=5,
                                  implementation="keras")
    out = layer(boxes, scores)
    assert tuple(out["boxes"].shape) == (1, 30, 4) and out["classes"].dtype == "int32"
    assert 1 <= int(out["num_detections"][0]) <= 5  # at most pre_nms_topk candidates survive
    top5 = np.sort(scores.reshape(-1))[::-1][:5]
    assert set(numpy(out["scores"])[0, : int(out["num_detections"][0])]) <= set(top5)
    clone = det.NonMaxSuppression.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, det.NonMaxSuppression) and restored.pre_nms_topk == 5
    with pytest.raises(ValueError, match="implementation"):
        det.NonMaxSuppression(implementation="cuda")


def nms_model(num_boxes, num_classes):
    # Inputs must not share the output names: ONNX graph names are unique.
    boxes = keras.Input((num_boxes, 4), batch_size=1, name="decoded_boxes")
    scores = keras.Input((num_boxes, num_classes), batch_size=1, name="class_scores")
    outputs = det.NonMaxSuppression(0.5, 0.1, max_detections=10, pre_nms_topk=50)(boxes, scores)
    return keras.Model({"decoded_boxes": boxes, "class_scores": scores}, outputs)


def test_nms_dynamic_batch_falls_back_to_keras_and_saves(tmp_path):
    boxes, scores = nms_case(5, batch=3, num_boxes=30, num_classes=2)
    layer = det.NonMaxSuppression(0.5, 0.1, max_detections=12, pre_nms_topk=40)
    dynamic = tf.function(layer, input_signature=[tf.TensorSpec((None, 30, 4)),
                                                  tf.TensorSpec((None, 30, 2))])
    static = layer(boxes, scores)  # static batch: TensorFlow's NMS op
    for key, value in dynamic(boxes, scores).items():
        np.testing.assert_array_equal(value.numpy(), numpy(static[key]))
    model = nms_model(30, 2)
    path = str(tmp_path / "nms.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    inputs = {"decoded_boxes": boxes[:1], "class_scores": scores[:1]}
    for key, value in restored(inputs).items():
        np.testing.assert_array_equal(numpy(value), numpy(model(inputs)[key]))
    with pytest.raises(ValueError, match="static batch"):
        tf.function(det.NonMaxSuppression(implementation="tensorflow"), input_signature=[
            tf.TensorSpec((None, 30, 4)), tf.TensorSpec((None, 30, 2))]).get_concrete_function()


def test_nms_lowers_to_builtin_tflite_and_onnx_nms(tmp_path):
    from keras_cv_course.export.converters import savedmodel_to_onnx, savedmodel_to_tflite
    from keras_cv_course.export.runners import ONNXRunner, TFLiteRunner

    num_boxes, num_classes = 40, 3
    model = nms_model(num_boxes, num_classes)
    saved = str(tmp_path / "saved")
    signature = {
        "decoded_boxes": tf.TensorSpec((1, num_boxes, 4), tf.float32, name="decoded_boxes"),
        "class_scores": tf.TensorSpec((1, num_boxes, num_classes), tf.float32,
                                      name="class_scores")}
    model.export(saved, format="tf_saved_model", input_signature=[signature], verbose=False)
    boxes, scores = nms_case(4, batch=1, num_boxes=num_boxes, num_classes=num_classes)
    inputs = {"decoded_boxes": boxes, "class_scores": scores}
    expected = {key: numpy(value) for key, value in model(inputs).items()}
    assert expected["num_detections"][0] > 3

    tflite = TFLiteRunner(_convert(savedmodel_to_tflite, saved, tmp_path / "nms.tflite"))
    ops = tflite.op_counts()
    assert "NON_MAX_SUPPRESSION_V5" in ops, ops
    assert not [op for op in ops if "FLEX" in op.upper() or op == "CUSTOM"], ops
    onnx = ONNXRunner(_convert(savedmodel_to_onnx, saved, tmp_path / "nms.onnx"))
    assert "NonMaxSuppression" in onnx.op_counts()
    for runner in (tflite, onnx):
        got = runner(inputs)
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


def _convert(converter, saved, path):
    converter(saved, str(path))
    return str(path)


def test_detection_parts_run_under_jax_without_tensorflow():
    script = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(name + " is blocked")
sys.meta_path.insert(0, Block())
import keras, numpy as np
from keras_cv_course import detection as det
assert keras.backend.backend() == "jax"
rng = np.random.default_rng(0)
xy = rng.uniform(0, 50, (1, 20, 2)); boxes = np.concatenate([xy, xy + 10], -1).astype("float32")
out = det.NonMaxSuppression(0.5, 0.1, 5, 30)(boxes, rng.random((1, 20, 2)).astype("float32"))
gt = np.array([[[0, 0, 30, 30], [-1, -1, -1, -1]]], "float32")
points, _ = det.anchor_points([(4, 4)], (8,))
assigned = det.task_aligned_assign(np.full((1, 16, 2), 0.5, "float32"),
                                   np.repeat(gt[:, :1], 16, 1), points, [[1, -1]], gt)
print("OK", int(out["num_detections"][0]), int(np.sum(assigned["foreground"])))
"""
    # 5 detections (max_detections); all 16 points lie in the box, the top 10 are positive.
    assert "OK 5 10" in run_on_jax(script, timeout=120)
