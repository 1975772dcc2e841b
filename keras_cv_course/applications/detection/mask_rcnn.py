"""Mask R-CNN: Faster R-CNN with a mask for every detection.

Paper: Kaiming He, Georgia Gkioxari, Piotr Dollár, Ross Girshick. "Mask R-CNN". ICCV 2017.
arXiv:1703.06870.

Variant, named: torchvision's ``maskrcnn_resnet50_fpn`` (v1): ``faster_rcnn.py``'s network,
plus the mask branch of ``detection.masks``: 14 x 14 RoIAlign, four 3x3 convolutions of 256,
a 2x2 deconvolution and one 28 x 28 map per class.

**Where the masks are made.** torchvision's mask branch reads the *final* detections, after
the per-class NMS. So, unlike Faster R-CNN (whose NMS the detection task runs on its raw
output), Mask R-CNN's ``call`` runs the NMS itself (IoU 0.5, scores above 0.05, 100 per
image: build arguments, not serving options) and then the mask branch on the kept boxes. Its
outputs: the raw detections (for the validation loss), the detections (``boxes`` normalised
``yxyx``, ``scores``, ``classes``, ``num_detections``) and ``detection_masks``, each
detection's 28 x 28 map of its class as probabilities. The ``instance_segmentation`` task
pastes them into the image. ``call`` stays deterministic; training adds the mask loss to
Faster R-CNN's four, on the sampled foreground RoIs (``compute_loss``).
"""

import keras
from keras import ops

from keras_cv_course.applications.detection.faster_rcnn import (
    RAW_PARITY_TOLERANCE,
    FasterRCNN,
)
from keras_cv_course.applications.detection.faster_rcnn import TINY as FASTER_TINY
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection.masks import (
    MASK_ROI_SIZE,
    gather_class_maps,
    mask_head,
    mask_head_layers,
    mask_loss,
    project_masks,
)
from keras_cv_course.detection.nms import NonMaxSuppression
from keras_cv_course.detection.roi_heads import BOX_POSITIVE_FRACTION, MultiLevelRoIAlign

PAPER = ("He, Gkioxari, Dollar, Girshick. Mask R-CNN. ICCV 2017. arXiv:1703.06870")
DETECTION_OUTPUTS = ("boxes", "scores", "classes", "num_detections")


def normalized_yxyx(boxes, image_size):
    """``xyxy`` pixel boxes -> ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1]."""
    height, width = float(image_size[0]), float(image_size[1])
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return ops.stack([y1 / height, x1 / width, y2 / height, x2 / width], axis=-1)


def detection_masks(layers, roi_align, levels, boxes, classes):
    """Each detection's 28 x 28 mask probabilities for its class: ``(B, D, 28, 28)``."""
    pooled = roi_align(levels, boxes)
    logits = mask_head(layers, pooled)  # (B * D, 28, 28, classes + 1)
    own = gather_class_maps(logits, ops.reshape(ops.maximum(classes, 0) + 1, (-1,)))
    return ops.reshape(ops.sigmoid(own), (-1, boxes.shape[1], own.shape[1], own.shape[2]))


def foreground_slots(sample):
    """The sampled RoIs the mask branch trains on: at most ``BOX_POSITIVE_FRACTION`` of the
    sample is foreground, so only that many slots are kept, foreground first (torchvision
    runs its mask head on the foreground RoIs alone); ``weights`` marks the real ones."""
    count = max(1, round(sample["rois"].shape[1] * BOX_POSITIVE_FRACTION))
    foreground = ops.cast(sample["labels"] > 0, "float32") * sample["weights"]
    weights, slots = ops.top_k(foreground, count)
    slots = ops.cast(slots, "int32")
    taken = {key: ops.take_along_axis(sample[key], slots, axis=1)
             for key in ("labels", "matched")}
    rois = ops.take_along_axis(sample["rois"], ops.repeat(slots[..., None], 4, -1), axis=1)
    return {"rois": rois, "weights": weights, **taken}


@keras.saving.register_keras_serializable(package="keras_cv_course")
class MaskRCNN(FasterRCNN):
    """Mask R-CNN with a ResNet-FPN; see the module docstring.

    Args:
        mask_width: channels of the mask head's convolutions.
        max_detections, score_threshold, iou_threshold: the detection NMS in ``call``.
        **kwargs: ``FasterRCNN``'s arguments.
    """

    loss_names = FasterRCNN.loss_names + ("mask_loss",)
    default_name = "maskrcnn_resnet50_fpn"

    def __init__(self, mask_width=256, max_detections=100, score_threshold=0.05,
                 iou_threshold=0.5, **kwargs):
        kwargs.pop("extras", None)
        super().__init__(extras=dict(mask_width=mask_width, max_detections=max_detections,
                                     score_threshold=score_threshold,
                                     iou_threshold=iou_threshold), **kwargs)

    def graph_outputs(self, graph, mask_width, max_detections, score_threshold,
                      iou_threshold):
        head, levels = graph["head"], graph["levels"][:-1]
        boxes, scores = head.decode(graph["raw"])
        found = NonMaxSuppression(iou_threshold, score_threshold, max_detections,
                                  name="detections")(boxes, scores)
        roi_align = MultiLevelRoIAlign(MASK_ROI_SIZE, graph["strides"][:-1],
                                       name="mask_roi_align")
        layers = mask_head_layers(head.num_classes, mask_width)
        masks = detection_masks(layers, roi_align, levels, found["boxes"], found["classes"])
        outputs = {head.name: graph["raw"],
                   "boxes": normalized_yxyx(found["boxes"], head.image_size),
                   **{key: found[key] for key in DETECTION_OUTPUTS[1:]},
                   "detection_masks": masks}
        return outputs, dict(mask_roi_align=roi_align, mask_layers=layers)

    def training_losses(self, images, targets, training=True):
        """Faster R-CNN's four losses and the mask loss of the sampled foreground RoIs."""
        losses, levels, sample = self.box_losses(images, targets["objects"], training)
        foreground = foreground_slots(sample)
        pooled = self._parts.value["mask_roi_align"](levels, foreground["rois"])
        logits = mask_head(self._parts.value["mask_layers"], pooled)
        truth = project_masks(targets["masks"], foreground["matched"], foreground["rois"],
                              size=logits.shape[1])
        mask = mask_loss(logits, ops.reshape(foreground["labels"], (-1,)), truth,
                         ops.reshape(foreground["weights"], (-1,)))
        return (*losses, mask)


TINY = dict(FASTER_TINY, mask_width=16, max_detections=10)

VARIANTS = (
    dict(name="maskrcnn_resnet50_fpn", builder=MaskRCNN, reference_params=44_401_393,
         params_source="torchvision maskrcnn_resnet50_fpn (v1), num_classes=91 "
                       "(90 here: torchvision counts background)",
         description="Mask R-CNN, ResNet-50-FPN: Faster R-CNN and a 28x28 mask per detection",
         parity_tolerance=RAW_PARITY_TOLERANCE),
)
register_family("mask_rcnn", VARIANTS, task="instance_segmentation", paper=PAPER,
                full_config=dict(input_shape=(800, 800, 3), classes=90), tiny_config=TINY)
