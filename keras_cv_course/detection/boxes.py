"""Box formats, conversions, areas and clipping.

Every box tensor here has shape ``(..., 4)``; the last axis holds one of four
layouts, named after the order of its numbers:

| format   | the four numbers                         | used by                      |
|----------|------------------------------------------|------------------------------|
| `xyxy`   | left, top, right, bottom                 | torchvision, COCO results    |
| `xywh`   | left, top, width, height                 | COCO annotations             |
| `cxcywh` | centre x, centre y, width, height        | YOLO labels, DETR            |
| `yxyx`   | top, left, bottom, right                 | `tf.image` NMS and crops     |

Coordinates are in pixels (or any one unit). A box covers ``[x1, x2)`` by
``[y1, y2)``, so its width is ``x2 - x1`` with no "+1", as in torchvision
and Fast R-CNN's successors (Girshick, "Fast R-CNN", ICCV 2015,
arXiv:1504.08083, kept the "+1" of pixel-index boxes; modern code drops it).
The rest of ``keras_cv_course.detection`` works in ``xyxy``.
"""

from keras import ops

BOX_FORMATS = ("xyxy", "xywh", "cxcywh", "yxyx")


def _check_format(box_format):
    if box_format not in BOX_FORMATS:
        raise ValueError(f"expected a box format in {BOX_FORMATS}, received {box_format!r}")


def _unstack(boxes):
    """The four coordinates of ``(..., 4)`` boxes, each ``(...)``."""
    return [boxes[..., i] for i in range(4)]


def to_xyxy(boxes, box_format):
    """Converts ``(..., 4)`` boxes from ``box_format`` to ``xyxy``.

    Args:
        boxes: a ``(..., 4)`` tensor.
        box_format: one of ``BOX_FORMATS``.

    Returns:
        The same boxes as ``(x1, y1, x2, y2)``.
    """
    _check_format(box_format)
    a, b, c, d = _unstack(ops.convert_to_tensor(boxes))
    if box_format == "xyxy":
        return ops.stack([a, b, c, d], axis=-1)
    if box_format == "xywh":
        return ops.stack([a, b, a + c, b + d], axis=-1)
    if box_format == "cxcywh":
        return ops.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=-1)
    return ops.stack([b, a, d, c], axis=-1)  # yxyx


def from_xyxy(boxes, box_format):
    """Converts ``(..., 4)`` boxes from ``xyxy`` to ``box_format``.

    Args:
        boxes: a ``(..., 4)`` tensor of ``(x1, y1, x2, y2)``.
        box_format: one of ``BOX_FORMATS``.

    Returns:
        The same boxes in ``box_format``.
    """
    _check_format(box_format)
    x1, y1, x2, y2 = _unstack(ops.convert_to_tensor(boxes))
    if box_format == "xyxy":
        return ops.stack([x1, y1, x2, y2], axis=-1)
    if box_format == "xywh":
        return ops.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
    if box_format == "cxcywh":
        return ops.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)
    return ops.stack([y1, x1, y2, x2], axis=-1)  # yxyx


def convert_format(boxes, source, target):
    """Converts ``(..., 4)`` boxes between any two of ``BOX_FORMATS``.

    Example:
        >>> ops.convert_to_numpy(convert_format([[10.0, 20.0, 30.0, 60.0]], "xyxy", "cxcywh"))
        array([[20., 40., 20., 40.]], dtype=float32)
    """
    return from_xyxy(to_xyxy(boxes, source), target)


def box_area(boxes):
    """Areas of ``(..., 4)`` ``xyxy`` boxes; inverted boxes have area 0.

    Returns:
        A ``(...)`` tensor.
    """
    x1, y1, x2, y2 = _unstack(ops.convert_to_tensor(boxes))
    return ops.maximum(x2 - x1, 0.0) * ops.maximum(y2 - y1, 0.0)


def clip_to_image(boxes, image_size):
    """Clips ``xyxy`` boxes to an image, like torchvision's ``clip_boxes_to_image``.

    Args:
        boxes: a ``(..., 4)`` tensor of ``(x1, y1, x2, y2)``.
        image_size: ``(height, width)`` of the image.

    Returns:
        Boxes with x in ``[0, width]`` and y in ``[0, height]``.
    """
    height, width = image_size
    x1, y1, x2, y2 = _unstack(ops.convert_to_tensor(boxes))
    return ops.stack([ops.clip(x1, 0.0, width), ops.clip(y1, 0.0, height),
                      ops.clip(x2, 0.0, width), ops.clip(y2, 0.0, height)], axis=-1)


def box_centers(boxes):
    """Centres ``(..., 2)`` of ``(..., 4)`` ``xyxy`` boxes, as ``(x, y)``."""
    boxes = ops.convert_to_tensor(boxes)
    return (boxes[..., :2] + boxes[..., 2:]) / 2
