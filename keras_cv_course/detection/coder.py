"""Box coders: what a detection head regresses instead of raw coordinates.

* ``BoxCoder``: the R-CNN parameterisation (Girshick et al., "Rich feature
  hierarchies for accurate object detection and semantic segmentation", CVPR
  2014, arXiv:1311.2524, appendix C), with torchvision's per-coordinate
  weights: a box relative to an anchor is
  ``(wx * dx / wa, wy * dy / ha, ww * log(w / wa), wh * log(h / ha))``, where
  ``dx, dy`` move the centre. RetinaNet and the RPN use weights
  ``(1, 1, 1, 1)``; Faster R-CNN's box head uses ``(10, 10, 5, 5)``. Decoding
  clips the log-scale to ``log(1000 / 16)`` so that ``exp`` cannot overflow.
* ``boxes_to_distances`` / ``distances_to_boxes``: the anchor-free
  parameterisation of FCOS (Tian et al., ICCV 2019, arXiv:1904.01355) and
  YOLOv8, the distances ``(left, top, right, bottom)`` from a point to the four
  sides of a box, optionally divided by a scale (the point's stride in YOLOv8,
  its anchor size in torchvision's FCOS).
"""

import math

from keras import ops

RETINANET_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
FASTER_RCNN_HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def _centre_size(boxes):
    """``(cx, cy, w, h)`` of ``(..., 4)`` ``xyxy`` boxes, each ``(...)``."""
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + width / 2, boxes[..., 1] + height / 2, width, height


class BoxCoder:
    """Encodes boxes as offsets from anchors and decodes them back.

    Args:
        weights: ``(wx, wy, ww, wh)``, multiplied into the encoded offsets.
        scale_clip: the largest log-scale ``decode`` feeds to ``exp``.

    Example:
        >>> coder = BoxCoder(FASTER_RCNN_HEAD_WEIGHTS)
        >>> deltas = coder.encode(gt_boxes, anchors)      # (..., 4)
        >>> boxes = coder.decode(deltas, anchors)         # gt_boxes again
    """

    def __init__(self, weights=RETINANET_WEIGHTS, scale_clip=BBOX_XFORM_CLIP):
        if len(weights) != 4:
            raise ValueError(f"expected 4 weights (wx, wy, ww, wh), received {weights!r}")
        self.weights = tuple(float(w) for w in weights)
        self.scale_clip = float(scale_clip)

    def encode(self, boxes, anchors):
        """``(..., 4)`` offsets of ``xyxy`` ``boxes`` from ``xyxy`` ``anchors`` (broadcast)."""
        wx, wy, ww, wh = self.weights
        x, y, w, h = _centre_size(ops.convert_to_tensor(boxes))
        ax, ay, aw, ah = _centre_size(ops.convert_to_tensor(anchors))
        return ops.stack([wx * (x - ax) / aw, wy * (y - ay) / ah,
                          ww * ops.log(w / aw), wh * ops.log(h / ah)], axis=-1)

    def decode(self, deltas, anchors):
        """``xyxy`` boxes from ``(..., 4)`` offsets and ``xyxy`` ``anchors`` (broadcast)."""
        wx, wy, ww, wh = self.weights
        deltas = ops.convert_to_tensor(deltas)
        ax, ay, aw, ah = _centre_size(ops.cast(ops.convert_to_tensor(anchors), deltas.dtype))
        x = deltas[..., 0] / wx * aw + ax
        y = deltas[..., 1] / wy * ah + ay
        w = ops.exp(ops.minimum(deltas[..., 2] / ww, self.scale_clip)) * aw
        h = ops.exp(ops.minimum(deltas[..., 3] / wh, self.scale_clip)) * ah
        return ops.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=-1)

    def get_config(self):
        return {"weights": self.weights, "scale_clip": self.scale_clip}


def boxes_to_distances(points, boxes, scale=1.0):
    """Distances ``(left, top, right, bottom)`` from points to the sides of boxes.

    Args:
        points: ``(..., 2)`` ``(x, y)`` positions.
        boxes: ``(..., 4)`` ``xyxy`` boxes (broadcast against ``points``).
        scale: a number or ``(...)`` tensor the distances are divided by.

    Returns:
        ``(..., 4)`` distances; a point inside its box has all four positive.
    """
    points, boxes = ops.convert_to_tensor(points), ops.convert_to_tensor(boxes)
    distances = ops.concatenate([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
    return distances / _expand_scale(scale)


def distances_to_boxes(points, distances, scale=1.0):
    """``xyxy`` boxes from points and their ``(left, top, right, bottom)`` distances.

    Args:
        points: ``(..., 2)`` ``(x, y)`` positions.
        distances: ``(..., 4)`` distances (broadcast against ``points``).
        scale: a number or ``(...)`` tensor the distances are multiplied by.

    Returns:
        ``(..., 4)`` boxes.
    """
    points = ops.convert_to_tensor(points)
    distances = ops.convert_to_tensor(distances) * _expand_scale(scale)
    return ops.concatenate([points - distances[..., :2], points + distances[..., 2:]], axis=-1)


def _expand_scale(scale):
    """A scalar stays a scalar; a ``(...)`` tensor gains a last axis to broadcast."""
    scale = ops.convert_to_tensor(scale, dtype="float32")
    return scale if len(scale.shape) == 0 else ops.expand_dims(scale, -1)
