"""RoIAlign against numbers worked out by hand from the definition.

Most cases use a 4 x 4 single-channel map whose cell (y, x) holds ``4 * y + x``:

     0  1  2  3
     4  5  6  7
     8  9 10 11
    12 13 14 15

Reading one sampling point (y, x): its neighbours are rows ``floor(y)``, ``floor(y) + 1`` and
columns ``floor(x)``, ``floor(x) + 1``; with ``ly = y - floor(y)``, ``lx = x - floor(x)`` their
weights are ``(1-ly)(1-lx)``, ``(1-ly)lx``, ``ly(1-lx)``, ``ly lx``. Borders: a point outside
``[-1, 4]`` reads 0, one in ``[-1, 0)`` reads as if at 0, one in ``[3, 4]`` reads row/column 3.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_cv_course.errors import KCCError
from keras_cv_course.layers.roi_align import (
    RoIAlign,
    assign_fpn_levels,
    multilevel_roi_align,
    roi_align,
    xyxy_from_normalized_yxyx,
)

RAMP = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)


def pool(features, boxes, output_size, **kwargs):
    """RoIAlign of boxes on image 0, as NumPy, channel axis dropped when single."""
    box_indices = np.zeros(len(boxes), dtype="int32")
    out = roi_align(features, np.array(boxes, "float32"), box_indices, output_size, **kwargs)
    out = ops.convert_to_numpy(out)
    return out[..., 0] if out.shape[-1] == 1 else out


def test_aligned_box_one_bin_one_point():
    # Box [1, 0.5, 3, 2], aligned: -0.5 -> x in [0.5, 2.5], y in [0, 1.5]; one bin, one point at
    # its centre: x = 0.5 + 2/2 = 1.5, y = 0 + 1.5/2 = 0.75.
    # Neighbours rows 0, 1 (ly = .75), columns 1, 2 (lx = .5):
    #   f(0,1)=1 * .25*.5  +  f(0,2)=2 * .25*.5  +  f(1,1)=5 * .75*.5  +  f(1,2)=6 * .75*.5
    #   = .125 + .25 + 1.875 + 2.25 = 4.5
    out = pool(RAMP, [[1.0, 0.5, 3.0, 2.0]], 1, sampling_ratio=1, aligned=True)
    np.testing.assert_allclose(out, [[[4.5]]], atol=1e-5)


def test_aligned_whole_map_two_by_two_bins_two_points():
    # Box [0, 0, 4, 4], aligned: [-0.5, 3.5] on both axes, bins of 2 cells, 2 points per bin at
    # -0.5 + (k + 0.5) * 2 / 2 = 0, 1, 2, 3 (k = 0..3): every point is a cell centre, so each
    # bin is the mean of a 2 x 2 block of cells. The point y = 3 reads row 3 alone.
    #   bin (0,0): (0 + 1 + 4 + 5) / 4 = 2.5     bin (0,1): (2 + 3 + 6 + 7) / 4 = 4.5
    #   bin (1,0): (8 + 9 + 12 + 13) / 4 = 10.5  bin (1,1): (10 + 11 + 14 + 15) / 4 = 12.5
    out = pool(RAMP, [[0.0, 0.0, 4.0, 4.0]], 2, sampling_ratio=2, aligned=True)
    np.testing.assert_allclose(out, [[[2.5, 4.5], [10.5, 12.5]]], atol=1e-5)


def test_unaligned_small_box_is_stretched_to_one_cell():
    # Box [1, 1, 1.5, 1.5], unaligned: size 0.5 is clamped to 1, so one bin [1, 2] per axis and
    # 2 points at 1 + .25 = 1.25 and 1 + .75 = 1.75.
    # Point (1.25, 1.25): cells 5, 6, 9, 10 with weights .5625, .1875, .1875, .0625
    #   = 2.8125 + 1.125 + 1.6875 + .625 = 6.25
    # likewise (1.25, 1.75) = 6.75, (1.75, 1.25) = 8.25, (1.75, 1.75) = 8.75; mean = 7.5
    out = pool(RAMP, [[1.0, 1.0, 1.5, 1.5]], 1, sampling_ratio=2, aligned=False)
    np.testing.assert_allclose(out, [[[7.5]]], atol=1e-5)


def test_aligned_small_box_is_not_stretched():
    # Same box, aligned: [0.5, 1] per axis, size 0.5 kept; points at .5 + .5*.25 = .625 and
    # .5 + .5*.75 = .875 per axis. The map is linear inside, so each point reads 4y + x and the
    # mean is at the mean point (.75, .75): 4 * .75 + .75 = 3.75.
    # (Point (.625, .625): cells 0, 1, 4, 5 with weights .140625, .234375, .234375, .390625
    #  = 0 + .234375 + .9375 + 1.953125 = 3.125 = 4 * .625 + .625.)
    out = pool(RAMP, [[1.0, 1.0, 1.5, 1.5]], 1, sampling_ratio=2, aligned=True)
    np.testing.assert_allclose(out, [[[3.75]]], atol=1e-5)


def test_weights_are_a_product_of_row_and_column_weights():
    # A single 1 at cell (y=1, x=2). Box [1.5, 1.25, 2.5, 2.25], aligned: x in [1, 2],
    # y in [0.75, 1.75]; one point at (y, x) = (1.25, 1.5).
    # Neighbours rows 1, 2 (ly = .25), columns 1, 2 (lx = .5); cell (1, 2) weighs
    # (1 - ly) * lx = .75 * .5 = .375, the other three cells are 0.
    impulse = np.zeros((1, 4, 4, 1), "float32")
    impulse[0, 1, 2, 0] = 1.0
    out = pool(impulse, [[1.5, 1.25, 2.5, 2.25]], 1, sampling_ratio=1, aligned=True)
    np.testing.assert_allclose(out, [[[0.375]]], atol=1e-5)


def test_points_beyond_minus_one_read_zero_but_still_count():
    # Box [-3, 0, 1, 1], unaligned, 1 bin, 2 x 2 points: x = -3 + 4*.25 = -2 and -3 + 4*.75 = 0,
    # y = .25 and .75.  x = -2 < -1 reads 0. (y, 0): 4y -> 1 and 3.
    # Mean over all 4 points (the divisor stays 4): (0 + 0 + 1 + 3) / 4 = 1.0
    out = pool(RAMP, [[-3.0, 0.0, 1.0, 1.0]], 1, sampling_ratio=2, aligned=False)
    np.testing.assert_allclose(out, [[[1.0]]], atol=1e-5)


def test_points_between_minus_one_and_zero_read_the_border():
    # Box [-1, 0, 0, 1], unaligned, one point at (y, x) = (.5, -.5); x is clamped to 0:
    # rows 0, 1 (ly = .5), column 0 alone: .5 * 0 + .5 * 4 = 2.0 (linear extension would be 1.5).
    out = pool(RAMP, [[-1.0, 0.0, 0.0, 1.0]], 1, sampling_ratio=1, aligned=False)
    np.testing.assert_allclose(out, [[[2.0]]], atol=1e-5)


def test_high_border_clamps_then_reads_zero():
    # Box [0, 3, 1, 5], unaligned, output 2 x 1, one point per bin: x = .5, y = 3.5 and 4.5.
    # y = 3.5 lies in [3, 4]: read row 3 alone -> f(3, .5) = .5 * 12 + .5 * 13 = 12.5
    # y = 4.5 > 4: reads 0.
    out = pool(RAMP, [[0.0, 3.0, 1.0, 5.0]], (2, 1), sampling_ratio=1, aligned=False)
    np.testing.assert_allclose(out, [[[12.5], [0.0]]], atol=1e-5)


def test_spatial_scale_halves_the_box():
    # Box [2, 2, 6, 6] * 0.5 = [1, 1, 3, 3], aligned -> [.5, 2.5]; one bin, points at
    # .5 + 2*.25 = 1 and .5 + 2*.75 = 2: cells 5, 6, 9, 10, mean 7.5.
    out = pool(RAMP, [[2.0, 2.0, 6.0, 6.0]], 1, spatial_scale=0.5, sampling_ratio=2)
    np.testing.assert_allclose(out, [[[7.5]]], atol=1e-5)


def test_box_indices_pick_the_image_and_channels_stay_apart():
    # Image 1 is image 0 + 16; channel 1 is 10 x channel 0. The box of the first test reads 4.5
    # on image 0, so 4.5 + 16 = 20.5 on image 1; channel 1 gives 45 and 205.
    image0 = np.concatenate([RAMP, 10 * RAMP], axis=-1)[0]
    image1 = np.concatenate([RAMP + 16, 10 * (RAMP + 16)], axis=-1)[0]
    features = np.stack([image0, image1])
    boxes = np.array([[1.0, 0.5, 3.0, 2.0]] * 2, "float32")
    out = roi_align(features, boxes, np.array([1, 0], "int32"), 1, sampling_ratio=1)
    expected = [[[[20.5, 205.0]]], [[[4.5, 45.0]]]]
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, atol=1e-4)


def test_linear_map_equals_the_function_at_each_bin_centre():
    # f = 3y - 2x + 1 is reproduced exactly by bilinear interpolation away from the borders, and
    # the mean of a bin's regularly spaced points is the bin's centre, so each output is f there.
    height, width = 6, 7
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    features = (3.0 * y - 2.0 * x + 1.0).astype("float32")[None, :, :, None]
    boxes = np.array([[1.0, 1.0, 5.0, 4.0], [0.5, 2.0, 3.5, 5.5]], "float32")
    out = pool(features, boxes, (2, 3), sampling_ratio=2, aligned=True)
    for roi, (x1, y1, x2, y2) in enumerate(boxes - 0.5):
        centre_y = y1 + (np.arange(2) + 0.5) * (y2 - y1) / 2
        centre_x = x1 + (np.arange(3) + 0.5) * (x2 - x1) / 3
        expected = 3.0 * centre_y[:, None] - 2.0 * centre_x[None, :] + 1.0
        np.testing.assert_allclose(out[roi], expected, atol=1e-5)


def test_fpn_levels_by_hand():
    # k = floor(4 + log2(sqrt(w h) / 224)), clamped to [2, 5]:
    #   224 x 224 -> 4;  112 x 112 -> 3;  56 x 56 -> 2;  28 x 28 -> 1 -> 2;  448 x 448 -> 5;
    #   896 x 896 -> 6 -> 5;  224 x 56: sqrt = 112 -> 3;  111 x 111: log2(.4955) = -1.01 -> 2
    sides = [(224, 224), (112, 112), (56, 56), (28, 28), (448, 448), (896, 896), (224, 56),
             (111, 111)]
    boxes = np.array([[10, 20, 10 + w, 20 + h] for w, h in sides], "float32")
    levels = ops.convert_to_numpy(assign_fpn_levels(boxes))
    np.testing.assert_array_equal(levels, [4, 3, 2, 2, 5, 5, 3, 2])


def test_fpn_level_eps_forgives_a_rounding_error():
    # torchvision adds 1e-6 before the floor. Side 111.99996 (3.4e-7 short of 112):
    #   4 + log2(111.99996 / 224) = 2.99999948; + 1e-6 = 3.0000005 -> 3 (it would be 2 without).
    # Side 111.9999 (8.9e-7 short): 2.99999871 + 1e-6 = 2.99999971 -> 2.
    boxes = np.array([[0, 0, 111.99996, 111.99996], [0, 0, 111.9999, 111.9999]], "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(assign_fpn_levels(boxes)), [3, 2])


def test_multilevel_equals_per_level_calls():
    # Strides 4 and 8 are levels 2 and 3; with canonical size 16 at level 3, an 8-pixel box goes
    # to level 2, a 16-pixel box to level 3 and a 32-pixel box to level 4, clamped to 3.
    rng = np.random.default_rng(0)
    fine = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    coarse = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    boxes = np.array([[0, 0, 8, 8], [4, 4, 20, 20], [0, 0, 32, 32]], "float32")
    box_indices = np.array([1, 0, 1], "int32")
    kwargs = {"output_size": 2, "sampling_ratio": 2, "aligned": True}
    levels = assign_fpn_levels(boxes, 2, 3, canonical_size=16, canonical_level=3)
    np.testing.assert_array_equal(ops.convert_to_numpy(levels), [2, 3, 3])

    out = multilevel_roi_align([fine, coarse], boxes, box_indices, strides=(4, 8),
                               canonical_size=16, canonical_level=3, **kwargs)
    on_fine = roi_align(fine, boxes, box_indices, spatial_scale=1 / 4, **kwargs)
    on_coarse = roi_align(coarse, boxes, box_indices, spatial_scale=1 / 8, **kwargs)
    expected = np.stack([on_fine[0], on_coarse[1], on_coarse[2]])
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, atol=1e-6)


def test_normalized_yxyx_adapter():
    # [ymin, xmin, ymax, xmax] = [.25, .5, .75, 1] on a 40-high, 80-wide image -> x 40..80, y 10..30
    out = xyxy_from_normalized_yxyx([[0.25, 0.5, 0.75, 1.0]], (40, 80))
    np.testing.assert_allclose(ops.convert_to_numpy(out), [[40.0, 10.0, 80.0, 30.0]])


def test_layer_config_round_trip():
    layer = RoIAlign((3, 2), spatial_scale=0.25, sampling_ratio=1, aligned=False, name="pool")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, RoIAlign)
    assert restored.get_config() == layer.get_config()
    assert restored.output_size == (3, 2) and restored.spatial_scale == 0.25
    assert restored.sampling_ratio == 1 and restored.aligned is False


def test_tflite_has_only_builtin_ops_and_matches_keras(tmp_path):
    # Through a SavedModel, as keras_cv_course.export does, with built-in ops only: conversion
    # itself fails if any op needs Flex; the op list is checked as well.
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    features = keras.Input(shape=(8, 8, 3), batch_size=1, name="features")
    boxes = keras.Input(shape=(4,), batch_size=3, name="boxes")
    box_indices = keras.Input(shape=(), batch_size=3, dtype="int32", name="box_indices")
    mixed = keras.layers.Conv2D(4, 1)(features)
    pooled = RoIAlign((2, 3), spatial_scale=0.5, sampling_ratio=2)([mixed, boxes, box_indices])
    model = keras.Model([features, boxes, box_indices], pooled)
    model.export(str(tmp_path), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    op_names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "GATHER" in op_names
    assert not [name for name in op_names if name.startswith("Flex") or name == "CUSTOM"]

    rng = np.random.default_rng(1)
    inputs = {"features": rng.normal(size=(1, 8, 8, 3)).astype("float32"),
              "boxes": np.array([[0, 0, 16, 16], [-4, 2, 6, 20], [3, 5, 9, 7]], "float32"),
              "box_indices": np.zeros(3, "int32")}
    (lite,) = interpreter.get_signature_runner()(**inputs).values()
    expected = model([inputs["features"], inputs["boxes"], inputs["box_indices"]])
    np.testing.assert_allclose(lite, ops.convert_to_numpy(expected), atol=1e-5)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: roi_align(RAMP, np.zeros((2, 5), "float32"), [0, 0], 2), "boxes of shape"),
        (lambda: roi_align(RAMP, np.zeros((1, 4), "float32"), [0], 2, sampling_ratio=0),
         "sampling_ratio"),
        (lambda: roi_align(RAMP[0], np.zeros((1, 4), "float32"), [0], 2), "features of shape"),
        (lambda: roi_align(RAMP, np.zeros((1, 4), "float32"), [0], (2, 0)), "output_size"),
        (lambda: RoIAlign(7, sampling_ratio=-1), "sampling_ratio"),
        (lambda: multilevel_roi_align([RAMP, RAMP], np.zeros((1, 4), "float32"), [0], 2,
                                      strides=(4, 12)), "strides"),
    ],
)
def test_bad_inputs_raise_one_line_errors(call, expected):
    with pytest.raises(KCCError, match=expected) as error:
        call()
    assert "\n" not in str(error.value)
