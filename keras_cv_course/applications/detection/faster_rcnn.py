"""Faster R-CNN: region proposals, then a box head on each proposal.

Paper: Shaoqing Ren, Kaiming He, Ross Girshick, Jian Sun. "Faster R-CNN: Towards Real-Time
Object Detection with Region Proposal Networks". NeurIPS 2015. arXiv:1506.01497. With the
feature pyramid of Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
arXiv:1612.03144.

Variant, named: torchvision's ``fasterrcnn_resnet50_fpn`` (v1): a ResNet-50 (v1.5, frozen
BatchNorm, ImageNet normalisation inside the model) under an FPN of 256 channels on C2-C5,
with P6 a stride-2 subsample of P5 for the RPN alone (``detection.rpn``); RoIAlign of each
proposal to 7 x 7 from P2-P5 and the two-layer box head (``detection.roi_heads``).

**One design for ``model.fit`` and export.** ``call`` is deterministic: image -> pyramid ->
RPN -> the test-time proposals (1000 per image) -> RoIAlign -> box head. Its one output, the
``FasterRCNNHead``'s ``raw_detections`` ``(B, R, 4 + 1 + (C + 1) + 4 (C + 1))``, packs each
proposal, whether it is real (a padding flag), its class logits and its class-specific
offsets; the head decodes them into per-class boxes and scores, and the detection task's
NMS makes the detections, in Keras, SavedModel, TFLite and ONNX alike. Training needs
something ``call`` must not do: sample proposals against the ground truth. So the model
computes its own loss (``compute_loss``, ``computes_own_loss``): it runs the trunk (pyramid
and RPN), draws the RPN's anchors and the head's RoIs with seeded random draws, and returns
the sum of the four losses, each also logged: ``rpn_objectness_loss``, ``rpn_box_loss``,
``classifier_loss`` and ``box_reg_loss``. The training proposals (2000 per image) come from
a second ``ProposalLayer`` with the training counts; it has no weights, so the exported graph
never contains the sampling. On TensorFlow, ``train_step`` runs only this training path;
other backends run Keras' step (which also evaluates ``call``) and the same loss (JAX:
``tests/test_backend_agnostic.py`` takes a ``fit`` step there).
"""

import keras
from keras import ops

from keras_cv_course.applications.detection import resnet_fpn
from keras_cv_course.applications.detection.retinanet import padded_objects
from keras_cv_course.applications.registry import register_family
from keras_cv_course.detection import (
    FASTER_RCNN_HEAD_WEIGHTS,
    AnchorGenerator,
    BoxCoder,
    Matcher,
    feature_sizes,
    pairwise_iou,
)
from keras_cv_course.detection.head import DetectionHead, OutOfSaving, split_objects
from keras_cv_course.detection.matching import gt_validity
from keras_cv_course.detection.roi_heads import (
    REPRESENTATION_SIZE,
    ROI_OUTPUT_SIZE,
    MultiLevelRoIAlign,
    box_head,
    box_head_layers,
    class_specific_boxes,
    fast_rcnn_losses,
    sample_proposals,
)
from keras_cv_course.detection.rpn import (
    POST_NMS_TOP_N,
    PRE_NMS_TOP_N,
    RPN_ANCHOR_SIZES,
    RPN_ASPECT_RATIOS,
    ProposalLayer,
    rpn_head_layers,
    rpn_losses,
    rpn_outputs,
)
from keras_cv_course.losses import replica_share

PAPER = ("Ren, He, Girshick, Sun. Faster R-CNN: Towards Real-Time Object Detection with "
         "Region Proposal Networks. NeurIPS 2015. arXiv:1506.01497")
LOSS_NAMES = ("rpn_objectness_loss", "rpn_box_loss", "classifier_loss", "box_reg_loss")
BACKBONE_LEVELS = ("C2", "C3", "C4", "C5")
RAW_PARITY_TOLERANCE = 1e-2
"""How far an fp32 artifact's raw heads may stray from Keras'. Proposals are pixel
coordinates decoded through ``exp``, and the box head reads features at them, so on a trained
tiny model the raw rows differed by up to 2.5e-3 (TFLite, Mask R-CNN after 6 epochs). The
detections and masks are held to their own rule (IoU >= 0.99, scores within 1e-3)."""


@keras.saving.register_keras_serializable(package="keras_cv_course")
class FasterRCNNHead(DetectionHead):
    """Packs proposals and box-head outputs; decodes per-class boxes; scores served proposals.

    Called on ``(proposals (B, R, 4), num_proposals (B,), class logits (B, R, C + 1),
    offsets (B, R, 4 (C + 1)))``.
    """

    def call(self, proposals, num_proposals, logits, offsets):
        real = ops.arange(proposals.shape[1])[None, :] < ops.cast(num_proposals, "int32")[:, None]
        real = ops.cast(real, proposals.dtype)[..., None]
        return ops.concatenate([proposals, real, logits, offsets], axis=-1)

    def unpack(self, raw):
        """``(proposals, real, logits, offsets)`` from the packed tensor."""
        raw = ops.cast(raw, "float32")
        classes = self.num_classes + 1
        return raw[..., :4], raw[..., 4], raw[..., 5:5 + classes], raw[..., 5 + classes:]

    def decode(self, raw):
        """Per-class boxes ``(B, R, C, 4)`` and scores ``(B, R, C)`` (softmax, background
        dropped, padding proposals 0)."""
        proposals, real, logits, offsets = self.unpack(raw)
        scores = ops.softmax(logits, axis=-1)[..., 1:] * real[..., None]
        return class_specific_boxes(proposals, offsets, self.image_size), scores

    def loss(self, objects, raw):
        """The box head's loss on the served proposals, each labelled by its best IoU (>= 0.5
        foreground); no sampling, no RPN term. The training loss is the model's."""
        proposals, real, logits, offsets = self.unpack(raw)
        gt_boxes, gt_classes = split_objects(padded_objects(objects), self.image_size)
        matches = Matcher(0.5, 0.5)(pairwise_iou(gt_boxes, proposals), gt_validity(gt_classes))
        foreground = (matches >= 0) & (real > 0)
        index = ops.maximum(matches, 0)
        labels = ops.where(foreground, ops.take_along_axis(gt_classes, index, axis=1) + 1, 0)
        truth = ops.take_along_axis(gt_boxes, ops.repeat(index[..., None], 4, -1), axis=1)
        # Padding proposals are empty boxes: any non-empty stand-in keeps the coder finite.
        proposals = ops.where(real[..., None] > 0, proposals, ops.ones_like(proposals) *
                              ops.convert_to_tensor([0.0, 0.0, 1.0, 1.0]))
        truth = ops.where(foreground[..., None], truth, proposals)
        targets = BoxCoder(FASTER_RCNN_HEAD_WEIGHTS).encode(truth, proposals)
        return ops.sum(ops.stack(fast_rcnn_losses(logits, offsets, ops.cast(labels, "int32"),
                                                  targets, real)))


def two_stage_graph(input_shape, classes, anchor_sizes, aspect_ratios, pre_nms_proposals,
                    proposals, representation, backbone):
    """The inference graph that Faster and Mask R-CNN share, as a dict: the image input, the
    pyramid levels (P2-P6), the RPN's outputs, anchors, the packed raw detections of the
    test-time proposals, and the layers the training path calls again."""
    image, image_size, pyramid, strides = resnet_fpn.image_and_pyramid(input_shape, **backbone)
    generator = AnchorGenerator(anchor_sizes, aspect_ratios)
    grids = feature_sizes(image_size, strides)
    anchors, counts = generator(image_size, grids), generator.level_counts(grids)
    levels = list(pyramid.values())
    rpn = rpn_head_layers(int(levels[0].shape[-1]), generator.num_anchors_per_location()[0])
    logits, offsets = rpn_outputs(levels, rpn)
    logits = keras.layers.Identity(name="rpn_objectness")(logits)
    offsets = keras.layers.Identity(name="rpn_offsets")(offsets)
    roi_align = MultiLevelRoIAlign(ROI_OUTPUT_SIZE, strides[:-1], name="roi_align")
    box_layers = box_head_layers(classes, representation)
    found = ProposalLayer(anchors, counts, image_size, pre_nms_proposals, proposals,
                          name="proposals")(logits, offsets)
    class_logits, class_offsets = box_head(box_layers, roi_align(levels[:-1], found["boxes"]),
                                           proposals)
    head = FasterRCNNHead(image_size, classes)
    raw = head(found["boxes"], found["num"], class_logits, class_offsets)
    return dict(image=image, image_size=image_size, levels=levels, strides=strides,
                logits=logits, offsets=offsets, anchors=anchors, counts=counts, raw=raw,
                head=head, layers=dict(roi_align=roi_align, box_layers=box_layers))


@keras.saving.register_keras_serializable(package="keras_cv_course")
class FasterRCNN(keras.Model):
    """Faster R-CNN with a ResNet-FPN; see the module docstring for the design.

    Args:
        input_shape: static ``(height, width, 3)``; pixels in [0, 1].
        classes: object classes, without background. torchvision's ``num_classes=91``
            counts background: it is ``classes=90`` here (COCO ids 1-90), 91 outputs.
        anchor_sizes: one tuple of anchor sizes per pyramid level (P2-P6).
        aspect_ratios: anchor height / width ratios.
        pre_nms_top_n, post_nms_top_n: the RPN's ``{"train": k, "test": k}`` counts.
        rpn_samples, box_samples: anchors and RoIs sampled per image in training.
        representation: width of the box head's two fully connected layers.
        seed: seed of the training-time sampling.
        name: model name.
        extras: a subclass's own arguments, handed to its ``graph_outputs``.
        **backbone: the ResNet-FPN's arguments (``resnet_fpn.image_and_pyramid``).
    """

    computes_own_loss = True
    loss_names = LOSS_NAMES
    default_name = "fasterrcnn_resnet50_fpn"

    def __init__(self, input_shape=(800, 800, 3), classes=90, anchor_sizes=RPN_ANCHOR_SIZES,
                 aspect_ratios=RPN_ASPECT_RATIOS, pre_nms_top_n=None, post_nms_top_n=None,
                 rpn_samples=256, box_samples=512, representation=REPRESENTATION_SIZE, seed=0,
                 name=None, extras=None, **backbone):
        backbone = {"backbone_levels": BACKBONE_LEVELS, "extra_levels": "pool", **backbone}
        pre = {**PRE_NMS_TOP_N, **(pre_nms_top_n or {})}
        post = {**POST_NMS_TOP_N, **(post_nms_top_n or {})}
        graph = two_stage_graph(input_shape, classes, anchor_sizes, aspect_ratios, pre["test"],
                                post["test"], representation, backbone)
        outputs, parts = self.graph_outputs(graph, **(extras or {}))
        super().__init__(inputs=graph["image"], outputs=outputs,
                         name=name or self.default_name)
        self._config = dict(input_shape=tuple(input_shape), classes=classes,
                            anchor_sizes=anchor_sizes, aspect_ratios=aspect_ratios,
                            pre_nms_top_n=pre, post_nms_top_n=post, rpn_samples=rpn_samples,
                            box_samples=box_samples, representation=representation, seed=seed,
                            name=self.name, **(extras or {}), **backbone)
        self._trunk = OutOfSaving(keras.Model(graph["image"], [*graph["levels"], graph["logits"],
                                                               graph["offsets"]]))
        self._parts = OutOfSaving({**graph["layers"], **parts})
        self.anchors, self.image_size = graph["anchors"], graph["image_size"]
        self.rpn_samples, self.box_samples = int(rpn_samples), int(box_samples)
        self.train_proposals = ProposalLayer(graph["anchors"], graph["counts"],
                                             graph["image_size"], pre["train"], post["train"],
                                             name="train_proposals")
        self.sampling_seed = keras.random.SeedGenerator(seed)
        self.loss_trackers = [keras.metrics.Mean(name=loss) for loss in self.loss_names]

    def graph_outputs(self, graph):
        """The model's outputs from the two-stage graph: the packed raw detections; and the
        layers the training path needs beyond the graph's."""
        return graph["raw"], {}

    def training_losses(self, images, targets, training=True):
        """The losses of a batch, in ``loss_names`` order (the training path)."""
        return self.box_losses(images, targets, training)[0]

    def box_losses(self, images, objects, training=True):
        """The four losses, and what a mask branch reuses: the pyramid (P2-P5) and the
        sampled RoIs."""
        gt_boxes, gt_classes = split_objects(padded_objects(objects), self.image_size)
        *levels, logits, offsets = self._trunk.value(images, training=training)
        rpn = rpn_losses(logits, offsets, self.anchors, gt_boxes, gt_classes,
                         self.sampling_seed, self.rpn_samples)
        proposals = self.train_proposals(logits, offsets)
        sample = sample_proposals(proposals["boxes"], proposals["num"], gt_boxes, gt_classes,
                                  self.sampling_seed, self.box_samples)
        pooled = self._parts.value["roi_align"](levels[:-1], sample["rois"])
        class_logits, class_offsets = box_head(self._parts.value["box_layers"], pooled,
                                               sample["rois"].shape[1])
        head = fast_rcnn_losses(class_logits, class_offsets, sample["labels"],
                                sample["targets"], sample["weights"])
        return (*rpn, *head), levels[:-1], sample

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The sum of the four losses, each recorded in its tracker; ``y_pred`` is unused.

        Under a ``tf.distribute`` strategy it returns this replica's share
        (``losses.replica_share``), as Keras' own losses do."""
        images = x["images"] if isinstance(x, dict) else x
        losses = self.training_losses(images, y, training=training)
        for tracker, value in zip(self.loss_trackers, losses):
            tracker.update_state(value)
        return replica_share(ops.sum(ops.stack(list(losses))))

    def train_step(self, *args):
        """TensorFlow: only the training path runs (``call``'s test-time proposals are not
        needed for the loss); other backends: Keras' step."""
        if keras.backend.backend() != "tensorflow":
            return super().train_step(*args)
        import tensorflow as tf

        x, y = args[-1][:2]
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=x, y=y)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self._loss_tracker.update_state(loss * replicas)  # the whole batch's loss
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self.get_metrics_result()

    def get_config(self):
        return dict(self._config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# 32x32 shapes: a narrow bottleneck ResNet, C2-C5 at strides 4-32 (P6 at 64), anchors
# 8-128 pixels (objects are 11-21 wide), a narrow FPN and box head, fewer proposals.
TINY = dict(input_shape=(32, 32, 3), classes=3, stage_widths=(4, 8, 8, 16),
            blocks_per_stage=(1, 1, 1, 1), backbone_norm="batch",
            fpn_channels=16, representation=64, anchor_sizes=((8,), (16,), (32,), (64,), (128,)),
            pre_nms_top_n={"train": 64, "test": 32}, post_nms_top_n={"train": 32, "test": 16},
            rpn_samples=64, box_samples=32)

VARIANTS = (
    dict(name="fasterrcnn_resnet50_fpn", builder=FasterRCNN, reference_params=41_755_286,
         params_source="torchvision fasterrcnn_resnet50_fpn (v1), num_classes=91 "
                       "(90 here: torchvision counts background)",
         description="Faster R-CNN, ResNet-50-FPN: region proposals, RoIAlign, box head",
         parity_tolerance=RAW_PARITY_TOLERANCE),
)
register_family("faster_rcnn", VARIANTS, task="detection", paper=PAPER,
                full_config=dict(input_shape=(800, 800, 3), classes=90), tiny_config=TINY)
