"""Mask R-CNN's mask branch parts, by hand: head size, targets, loss, pasting, mask AP."""

import math

import keras
import numpy as np
import pytest

from keras_cv_course.detection.masks import (
    mask_coco_metrics,
    mask_head,
    mask_head_layers,
    mask_loss,
    paste_masks,
    project_masks,
)


def numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def test_mask_head_has_torchvision_size_and_shape():
    pooled = keras.Input((14, 14, 256))
    model = keras.Model(pooled, mask_head(mask_head_layers(classes=90), pooled))
    assert model.output.shape == (None, 28, 28, 91)
    # MaskRCNNHeads: four 3x3 convs 256->256; MaskRCNNPredictor: 2x2 deconv, 1x1 to 91.
    assert model.count_params() == 4 * (256 * 256 * 9 + 256) + (256 * 256 * 4 + 256) + (
        256 * 91 + 91) == 2_646_107


# Pasting: a 2x2 mask on the box [0, 0, 4, 4] of an 8x8 image. Pixel centres 0.5 ... 7.5 sit
# at mask coordinates 0.75, 1.25, ..., 4.25 of the mask padded by one zero cell, so a mask
# column of ones reads 0.75, 1, 1, 0.75, 0.25, 0, 0, 0 across the image.
ONES_PROFILE = np.array([0.75, 1, 1, 0.75, 0.25, 0, 0, 0])


def test_pasting_a_mask_of_ones_falls_off_over_one_pixel():
    pasted = numpy(paste_masks(np.ones((1, 1, 2, 2)), np.array([[[0, 0, 4, 4]]]), (8, 8)))
    np.testing.assert_allclose(pasted[0, 0], np.outer(ONES_PROFILE, ONES_PROFILE), atol=1e-6)


def test_pasting_keeps_a_left_half_on_the_left():
    left = np.array([[[[1.0, 0.0], [1.0, 0.0]]]])
    pasted = numpy(paste_masks(left, np.array([[[0, 0, 4, 4]]]), (8, 8)))
    columns = np.array([0.75, 0.75, 0.25, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(pasted[0, 0], np.outer(ONES_PROFILE, columns), atol=1e-6)


def test_pasting_follows_the_box():
    pasted = numpy(paste_masks(np.ones((1, 1, 2, 2)), np.array([[[2, 4, 6, 8]]]), (8, 8)))
    # The same fall-off, shifted: 0.25 half a cell before the box, 0.75 and 1 inside it.
    rows = np.array([0, 0, 0, 0.25, 0.75, 1, 1, 0.75])
    columns = np.array([0, 0.25, 0.75, 1, 1, 0.75, 0.25, 0])
    np.testing.assert_allclose(pasted[0, 0], np.outer(rows, columns), atol=1e-6)


def test_targets_are_the_matched_object_cut_out_by_the_roi():
    masks = np.zeros((1, 2, 32, 32), "float32")
    masks[0, 0, 2:8, 2:8] = 1
    # RoIAlign without the half-pixel shift samples x in [8, 16): pixels 8 to 16 cover it.
    masks[0, 1, 8:17, 8:17] = 1
    rois = np.array([[[8, 8, 16, 16], [8, 8, 16, 16], [20, 20, 30, 30]]], "float32")
    targets = numpy(project_masks(masks, np.array([[1, 0, 1]]), rois))
    assert targets.shape == (3, 28, 28)
    np.testing.assert_allclose(targets[0], 1.0, atol=1e-6)  # object 1 fills the RoI
    np.testing.assert_allclose(targets[1], 0.0, atol=1e-6)  # object 0 is elsewhere
    np.testing.assert_allclose(targets[2], 0.0, atol=1e-6)  # an empty corner


def test_mask_loss_reads_the_true_class_only():
    logits = np.zeros((2, 28, 28, 3), "float32")
    logits[..., 1] = 50.0  # another class's map: must not count
    labels = np.array([2, 0])  # RoI 1 is background: no mask loss
    targets = np.ones((2, 28, 28), "float32")
    loss = float(mask_loss(logits, labels, targets, np.ones(2)))
    assert loss == pytest.approx(math.log(2), rel=1e-6)
    logits[0, ..., 2] = 20.0  # confident and right
    assert float(mask_loss(logits, labels, targets, np.ones(2))) < 1e-6
    assert float(mask_loss(logits, np.array([0, 0]), targets, np.ones(2))) == 0.0


def square(size, top, left, side):
    mask = np.zeros((size, size), np.uint8)
    mask[top:top + side, left:left + side] = 1
    return mask


def test_mask_ap_is_pycocotools_segm():
    truth = [(np.stack([square(32, 4, 4, 10)]), np.array([0]))]
    perfect = [(np.stack([square(32, 4, 4, 10)]), np.array([0.9]), np.array([0]))]
    assert mask_coco_metrics(perfect, truth, 1) == pytest.approx(
        {"mask_ap": 1.0, "mask_ap50": 1.0, "mask_ap75": 1.0})
    # An 8x8 square inside the 10x10 one: IoU 64 / 100 = 0.64, a match at IoU 0.50, 0.55
    # and 0.60 of the ten thresholds 0.50:0.05:0.95.
    inside = [(np.stack([square(32, 5, 5, 8)]), np.array([0.9]), np.array([0]))]
    scores = mask_coco_metrics(inside, truth, 1)
    assert scores["mask_ap"] == pytest.approx(0.3)
    assert (scores["mask_ap50"], scores["mask_ap75"]) == pytest.approx((1.0, 0.0))
    wrong_class = [(np.stack([square(32, 4, 4, 10)]), np.array([0.9]), np.array([1]))]
    assert mask_coco_metrics(wrong_class, truth, 2)["mask_ap50"] == 0.0
