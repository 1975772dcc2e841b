"""Anchor boxes and anchor points on a feature pyramid, for a static image size.

Anchor boxes follow torchvision's ``AnchorGenerator`` (the detectors of Ren et
al., "Faster R-CNN", NeurIPS 2015, arXiv:1506.01497, and Lin et al., "Focal
Loss for Dense Object Detection" (RetinaNet), ICCV 2017, arXiv:1708.02002):

* each level has sizes ``s`` and aspect ratios ``r = height / width``; the
  cell anchor of ``(r, s)`` has width ``s / sqrt(r)`` and height
  ``s * sqrt(r)``, centred on 0 and rounded to whole pixels;
* a level's stride is ``image_size // feature_size`` (integer division, per
  axis), and the anchor of grid cell ``(i, j)`` is centred at
  ``(j * stride_x, i * stride_y)``: on the cell's top-left corner, not its
  centre;
* RetinaNet uses three scales per octave, ``s * 2^(k/3)`` for ``k = 0, 1, 2``,
  truncated to integers as torchvision does (32, 40, 50 at P3).

Anchor points, for anchor-free heads, are one point per grid cell at
``((j + offset) * stride, (i + offset) * stride)``. YOLOv8 (Ultralytics'
``make_anchors``) puts them at the cell centre, ``offset = 0.5``. torchvision's
FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection",
ICCV 2019, arXiv:1904.01355) uses this module's anchor boxes with one size per
level equal to the stride (8, 16, 32, 64, 128) and ratio 1, so its points are
those boxes' centres: ``offset = 0``.

Ordering, everywhere: level (finest first), then row ``y``, then column ``x``,
then the anchors of one cell (aspect ratio major, size minor) — the order in
which a head's ``(B, H, W, A * K)`` output reshapes to ``(B, H * W * A, K)``.
The arrays are NumPy: they are constants of a static image size.
"""

import math

import numpy as np

RETINANET_BASE_SIZES = (32, 64, 128, 256, 512)  # P3..P7
FCOS_SIZES = ((8,), (16,), (32,), (64,), (128,))  # one anchor per cell, its size = stride


def octave_sizes(base_size, scales_per_octave=3):
    """RetinaNet's sizes of one level: ``int(base * 2^(k / n))`` for ``k < n``.

    Example:
        >>> octave_sizes(32)
        (32, 40, 50)
    """
    return tuple(int(base_size * 2 ** (k / scales_per_octave)) for k in range(scales_per_octave))


def retinanet_sizes(base_sizes=RETINANET_BASE_SIZES, scales_per_octave=3):
    """Per-level sizes of torchvision's RetinaNet: three scales per octave on each base."""
    return tuple(octave_sizes(base, scales_per_octave) for base in base_sizes)


def feature_sizes(image_size, strides):
    """Grid ``(height, width)`` of each level: ``ceil(image / stride)``, as stride-2
    convolutions with "same" padding give."""
    height, width = image_size
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def cell_anchors(sizes, aspect_ratios):
    """The zero-centred anchors of one grid cell.

    Args:
        sizes: anchor sizes (square roots of their areas), in pixels.
        aspect_ratios: height / width ratios.

    Returns:
        A ``(len(aspect_ratios) * len(sizes), 4)`` ``xyxy`` array, aspect
        ratio major, rounded half to even like ``torch.round``.
    """
    sizes = np.asarray(sizes, np.float64)
    height_factors = np.sqrt(np.asarray(aspect_ratios, np.float64))
    widths = (sizes[None, :] / height_factors[:, None]).reshape(-1)
    heights = (sizes[None, :] * height_factors[:, None]).reshape(-1)
    return np.round(np.stack([-widths, -heights, widths, heights], axis=1) / 2)


def _cell_offsets(grid_size, stride, offset):
    """``(H * W, 2)`` x, y positions of the cells of one level, row-major."""
    rows = (np.arange(grid_size[0]) + offset) * stride[0]
    columns = (np.arange(grid_size[1]) + offset) * stride[1]
    y, x = np.meshgrid(rows, columns, indexing="ij")
    return np.stack([x.reshape(-1), y.reshape(-1)], axis=1)


class AnchorGenerator:
    """Anchor boxes over a feature pyramid, with torchvision's conventions.

    Args:
        sizes: one tuple of sizes per level, e.g. ``retinanet_sizes()``.
        aspect_ratios: one tuple of height / width ratios per level, or a
            single tuple shared by every level.

    Example:
        >>> generator = AnchorGenerator(retinanet_sizes(), (0.5, 1.0, 2.0))
        >>> anchors = generator((512, 512), feature_sizes((512, 512), (8, 16, 32, 64, 128)))
        >>> anchors.shape    # 9 anchors per cell on 64², 32², 16², 8² and 4² grids
        (49104, 4)
    """

    def __init__(self, sizes, aspect_ratios=(0.5, 1.0, 2.0)):
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (tuple(aspect_ratios),) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError(f"expected one aspect-ratio tuple per level ({len(sizes)}), "
                             f"received {len(aspect_ratios)}")
        self.sizes = tuple(tuple(level) for level in sizes)
        self.aspect_ratios = tuple(tuple(level) for level in aspect_ratios)

    def num_anchors_per_location(self):
        """Anchors per grid cell of each level."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def level_counts(self, grid_sizes):
        """Anchors of each level, to split a ``(B, total, K)`` head output by level."""
        return [h * w * a for (h, w), a in zip(grid_sizes, self.num_anchors_per_location())]

    def __call__(self, image_size, grid_sizes):
        """All anchors, ``(total, 4)`` ``xyxy`` float32, ordered (level, y, x, anchor).

        Args:
            image_size: ``(height, width)`` of the network input.
            grid_sizes: ``(height, width)`` of each level's feature map.
        """
        if len(grid_sizes) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} feature maps, received {len(grid_sizes)}")
        levels = []
        for grid, sizes, ratios in zip(grid_sizes, self.sizes, self.aspect_ratios):
            stride = (image_size[0] // grid[0], image_size[1] // grid[1])
            centres = np.tile(_cell_offsets(grid, stride, 0.0), 2)  # (H * W, 4)
            base = cell_anchors(sizes, ratios)  # (A, 4)
            levels.append((centres[:, None, :] + base[None, :, :]).reshape(-1, 4))
        return np.concatenate(levels).astype(np.float32)


def anchor_points(grid_sizes, strides, offset=0.5):
    """One point per grid cell, for anchor-free heads (FCOS, YOLOv8).

    Args:
        grid_sizes: ``(height, width)`` of each level's feature map.
        strides: each level's stride in pixels.
        offset: 0.5 puts points at cell centres (YOLOv8); 0 at cell corners
            (torchvision's FCOS).

    Returns:
        ``(points, point_strides)``: a ``(total, 2)`` float32 array of ``(x, y)``
        pixel positions, ordered (level, y, x), and the ``(total,)`` stride of
        each point.
    """
    points = [_cell_offsets(grid, (stride, stride), offset)
              for grid, stride in zip(grid_sizes, strides)]
    point_strides = [np.full(len(p), stride) for p, stride in zip(points, strides)]
    return np.concatenate(points).astype(np.float32), np.concatenate(point_strides).astype(
        np.float32)
