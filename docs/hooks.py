"""MkDocs hooks of the documentation site (``hooks:`` in ``mkdocs.yml``).

* ``<!-- course-map -->`` on a page becomes the course map: lecture, topics,
  modules, tutorial and models, the models read from the registry
  (``keras_cv_course.applications``); nothing is built.
* ``<!-- model-table -->`` becomes the model table of ``README.md`` (between
  ``<!-- model-table:start -->`` and ``<!-- model-table:end -->``), which
  ``tests/test_readme.py`` keeps current, so the docs build never builds the
  full-size models.
* executed tutorial pages lose TensorFlow's C++ start-up log lines (CUDA
  probing) from their stderr outputs; everything else they print stays.
* ``KCC_DOCS_EXECUTE=true`` executes the tutorials (``mkdocs.yml`` reads it
  for mkdocs-jupyter); the kernels then see ``KCC_FAST=1`` unless it is set.
  ``KCC_DOCS_EXECUTE_ONLY=01_*`` executes only the tutorials matching the
  pattern (the others are rendered without outputs).

``tests/test_docs.py`` imports this file to check the course map.
"""

import fnmatch
import logging
import os
import re
from html import escape as html_escape
from html import unescape as html_unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
README = ROOT / "README.md"
COURSE_MAP_MARKER = "<!-- course-map -->"
MODEL_TABLE_MARKER = "<!-- model-table -->"
TABLE_START, TABLE_END = "<!-- model-table:start -->", "<!-- model-table:end -->"
TRUE = ("1", "true", "yes", "on")
NATIVE_LOG = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)"
                        r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.\-]+:\d+\] ")
STDERR_OUTPUT = re.compile(
    r'<div class="jp-OutputArea-child">\s*<div class="jp-OutputPrompt jp-OutputArea-prompt">'
    r'</div>\s*<div class="jp-RenderedText jp-OutputArea-output" '
    r'data-mime-type="application/vnd.jupyter.stderr"[^>]*>\s*<pre>(?P<text>[^<]*)</pre>'
    r'\s*</div>\s*</div>')

log = logging.getLogger("mkdocs.hooks.kcc")

# One row per lecture. ``modules``: (label, autorefs identifier); ``families``:
# registry families the lecture teaches; ``tasks``: every model of these tasks.
LECTURES = (
    dict(number=1, lecture="Image classification & kNN",
         topics="the data-driven approach; L1 and L2 distances; choosing k by cross-validation",
         modules=(("applications/classification/knn.py",
                   "keras_cv_course.applications.classification.knn"),
                  ("data", "keras_cv_course.data.load_dataset")),
         tutorial="01_image_classification_knn.py", families=("knn",)),
    dict(number=2, lecture="Linear classifiers",
         topics="score functions; softmax cross-entropy and the multiclass SVM loss",
         modules=(("applications/classification/linear.py",
                   "keras_cv_course.applications.classification.linear"),),
         tutorial="02_linear_classifiers.py", families=("linear",)),
    dict(number=3, lecture="Optimization",
         topics="SGD, momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW",
         modules=(("training/optimizers.py", "keras_cv_course.training.optimizers"),
                  ("train()", "keras_cv_course.training.train.train")),
         tutorial="03_optimization.py", families=("linear", "mlp")),
    dict(number=4, lecture="Neural networks & backprop",
         topics="computational graphs; modular forward/backward passes; gradient checking; "
                "the two-layer network",
         modules=(("fundamentals/backprop.py", "keras_cv_course.fundamentals.backprop"),
                  ("applications/classification/linear.py",
                   "keras_cv_course.applications.classification.linear")),
         tutorial="04_neural_networks_backprop.py", families=("mlp",)),
    dict(number=5, lecture="CNNs & architectures",
         topics="convolution and pooling; AlexNet to ViT; depth, width and efficiency; "
                "FLOPs and feature levels",
         modules=(("applications/classification/", "api/zoo/classification.md"),
                  ("applications.flops", "keras_cv_course.applications.flops.flops"),
                  ("applications.backbone", "keras_cv_course.applications.backbone")),
         tutorial="05_cnn_architectures.py",
         families=("alexnet", "vgg", "googlenet", "resnet", "resnext", "mobilenet_v1",
                   "mobilenet_v2", "mobilenet_v3", "efficientnet", "regnet", "vit")),
    dict(number=6, lecture="Training neural networks",
         topics="initialisation; batch/layer/group/instance norm; augmentation (mixup, "
                "CutMix); regularisation; learning-rate schedules",
         modules=(("layers", "keras_cv_course.layers"),
                  ("training/schedules.py", "keras_cv_course.training.schedules"),
                  ("data/augment.py", "keras_cv_course.data.augment")),
         tutorial="06_training_neural_networks.py",
         models_note="every model: the layers, augmentations and schedules plug into any "
                     "classifier"),
    dict(number=7, lecture="Semantic segmentation",
         topics="fully convolutional networks; upsampling and skips; mean IoU",
         modules=(("applications/segmentation/fcn.py",
                   "keras_cv_course.applications.segmentation.fcn"),
                  ("tasks/segmentation.py", "keras_cv_course.tasks.segmentation")),
         tutorial="07_segmentation.py", tasks=("segmentation",)),
    dict(number=8, lecture="Object detection",
         topics="IoU and GIoU; YOLO's grid; anchors and points (RetinaNet, FCOS); focal loss; "
                "NMS; COCO AP and VOC mAP; export with NMS inside; two stages: the region "
                "proposal network, RoIAlign and the Faster R-CNN box head",
         modules=(("applications/detection/", "api/zoo/detection.md"),
                  ("detection parts", "api/detection.md"),
                  ("tasks/detection.py", "keras_cv_course.tasks.detection")),
         tutorial="10_object_detection.py", tasks=("detection",)),
    dict(number=9, lecture="Generative models: VAE",
         topics="latent variables; the ELBO; the reparameterisation trick; sampling",
         modules=(("applications/generative/vae.py",
                   "keras_cv_course.applications.generative.vae"),
                  ("layers/sampling.py", "keras_cv_course.layers.sampling")),
         tutorial="08_variational_autoencoder.py", tasks=("generative",)),
    dict(number=10, lecture="Export & deployment",
         topics="SavedModel, TFLite and ONNX; the parity gate; the manifest; running on "
                "a phone or a board",
         modules=(("export", "keras_cv_course.export.export"),
                  ("Deploy to a phone or board", "deploy.md")),
         tutorial="09_export_and_deployment.py", exports=True),
    dict(number=11, lecture="Visualizing and understanding",
         topics="first-layer filters; maximally activating patches; saliency, SmoothGrad, "
                "guided backprop, Grad-CAM, occlusion; sanity checks; class visualisation; "
                "feature inversion; adversarial examples; DeepDream; style transfer",
         modules=(("understanding", "api/understanding.md"),),
         tutorial="11_visualizing_and_understanding.py", families=("resnet", "mlp")),
    dict(number=12, lecture="Generative models: PixelCNN, GANs and diffusion",
         topics="autoregressive likelihoods and bits/dim; masked convolutions; the GAN game; "
                "conditional GANs; the diffusion forward process; DDPM training; DDIM sampling; "
                "serving and exporting a generator",
         modules=(("applications/generative/", "api/zoo/generative.md"),
                  ("applications/generative/pixelcnn.py",
                   "keras_cv_course.applications.generative.pixelcnn"),
                  ("applications/generative/pixelrnn.py",
                   "keras_cv_course.applications.generative.pixelrnn"),
                  ("applications/generative/gan.py",
                   "keras_cv_course.applications.generative.gan"),
                  ("applications/generative/diffusion.py",
                   "keras_cv_course.applications.generative.diffusion"),
                  ("generative/sampling.py", "keras_cv_course.generative.sampling"),
                  ("generative/metrics.py", "keras_cv_course.generative.metrics"),
                  ("generative/quality.py", "keras_cv_course.generative.quality")),
         tutorial="12_generative_models.py", tasks=("generative", "conditional_generative")),
    dict(number=13, lecture="Recurrent networks, attention and image captioning",
         topics="the vanilla RNN, LSTM and GRU from their equations; vanishing gradients; "
                "captioning with teacher forcing; soft attention over a feature grid; "
                "self-attention and the Transformer; greedy and beam search; BLEU and CIDEr-D; "
                "exporting an encoder and a one-step decoder",
         modules=(("sequence", "api/sequence.md"),
                  ("applications/captioning/", "api/zoo/captioning.md"),
                  ("sequence/cells.py", "keras_cv_course.sequence.cells"),
                  ("sequence/attention.py", "keras_cv_course.sequence.attention"),
                  ("sequence/transformer.py", "keras_cv_course.sequence.transformer"),
                  ("sequence/captioning.py", "keras_cv_course.sequence.captioning")),
         tutorial="13_sequences_and_captioning.py", tasks=("captioning",)),
    dict(number=14, lecture="Detection and segmentation: two stages",
         topics="region proposals; RoIAlign; the Faster R-CNN box head; proposal sampling in "
                "compute_loss; Mask R-CNN's mask branch; box and mask AP; end-to-end export",
         modules=(("detection/rpn.py", "keras_cv_course.detection.rpn"),
                  ("detection/roi_heads.py", "keras_cv_course.detection.roi_heads"),
                  ("detection/masks.py", "keras_cv_course.detection.masks"),
                  ("layers/roi_align.py", "keras_cv_course.layers.roi_align"),
                  ("tasks/instance_segmentation.py",
                   "keras_cv_course.tasks.instance_segmentation")),
         tutorial="14_two_stage_detection_and_instance_segmentation.py",
         tasks=("detection", "instance_segmentation")),
)


def tutorial_files():
    """The tutorial scripts in ``tutorials/`` (jupytext percent format)."""
    if not TUTORIALS.is_dir():
        return []
    return sorted(path.name for path in TUTORIALS.glob("[0-9][0-9]_*.py"))


def tutorial_header(name):
    """``{"title": ..., "Lecture": ..., "Tasks": ...}`` from a tutorial's first markdown cell."""
    header = {}
    for line in (TUTORIALS / name).read_text(encoding="utf-8").splitlines()[:40]:
        match = re.match(r"#\s*(Lecture|Tasks):\s*(.+)", line)
        if match:
            header.setdefault(match.group(1), match.group(2).strip())
        title = re.match(r"# # (.+)", line)
        if title:
            header.setdefault("title", title.group(1).strip())
    return header


def tutorial_models(name, registry):
    """Registered model names that a tutorial quotes, e.g. ``build("resnet18")``."""
    text = (TUTORIALS / name).read_text(encoding="utf-8")
    quoted = set(re.findall(r"[\"']([a-z0-9_]+)[\"']", text))
    return sorted(quoted & set(registry), key=_natural)


def _natural(name):
    """``resnet18`` before ``resnet101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _registry():
    """``{model name: ModelInfo}`` of every registered model (nothing is built)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_cv_course import applications

    return {name: applications.get_info(name) for name in applications.list_models()}


def lecture_models(row, registry):
    """The registry names a lecture teaches, family by family: ``{family: [names]}``."""
    groups = {}
    for name, info in sorted(registry.items(), key=lambda item: _natural(item[0])):
        if info.family in row.get("families", ()) or info.task in row.get("tasks", ()):
            groups.setdefault(info.family, []).append(name)
    missing = [family for family in row.get("families", ()) if family not in groups]
    if missing:
        raise ValueError(f"course map: lecture {row['number']} names families {missing} "
                         "that the registry does not have")
    return dict(sorted(groups.items(), key=lambda item: row.get("families", ()).index(item[0])
                       if item[0] in row.get("families", ()) else 99))


def _link(label, target, page_prefix=""):
    if target.endswith(".md"):
        return f"[{label}]({page_prefix}{target})"
    return f"[`{label}`][{target}]"


def _tutorial_cell(name, present, page_prefix):
    if name not in present:
        return f"`{name}` (in preparation)"
    header = tutorial_header(name)
    label = header.get("title", name).replace("|", "\\|")
    task = f"<br>task: {header['Tasks']}" if header.get("Tasks") else ""
    return f"[{label}]({page_prefix}tutorials/{name})<br>`{name}`{task}"


def _models_cell(row, groups, registry, present, page_prefix=""):
    if row.get("exports"):
        every = [name for name, info in registry.items()
                 if all(info.supports_export(fmt) for fmt in ("savedmodel", "tflite", "onnx"))]
        parts = [f"all {len(registry)} registered models; {len(every)} export to SavedModel, "
                 f"TFLite and ONNX ([model table]({page_prefix}models.md))"]
    else:
        parts = [row["models_note"]] if row.get("models_note") else []
    listed = []
    for family, names in groups.items():
        listed += names
        if len(names) <= 3:
            parts.append(", ".join(f"`{n}`" for n in names))
        else:
            parts.append(f"{family}: {len(names)} variants (`{names[0]}` ... `{names[-1]}`)")
    if row["tutorial"] in present:
        used = tutorial_models(row["tutorial"], registry)
        if used and used != listed:
            parts.append("*in the tutorial:* " + ", ".join(f"`{n}`" for n in used))
    return "<br>".join(parts)


def course_map_markdown(registry=None, page_prefix=""):
    """The course map as Markdown: one table row per lecture."""
    registry = _registry() if registry is None else registry
    present = set(tutorial_files())
    claimed = {row["tutorial"] for row in LECTURES}
    lines = ["| # | lecture | topics | modules | tutorial | models |",
             "|---|---|---|---|---|---|"]
    for row in LECTURES:
        groups = lecture_models(row, registry)
        modules = ", ".join(_link(label, target, page_prefix) for label, target in row["modules"])
        lines.append(f"| {row['number']} | **{row['lecture']}** | {row['topics']} | {modules} | "
                     f"{_tutorial_cell(row['tutorial'], present, page_prefix)} | "
                     f"{_models_cell(row, groups, registry, present, page_prefix)} |")
    unclaimed = sorted(present - claimed)
    if unclaimed:
        log.warning("course map: tutorials %s belong to no lecture (docs/hooks.py LECTURES)",
                    unclaimed)
    return "\n".join(lines)


def readme_model_table():
    """The generated model table of README.md, markers excluded."""
    text = README.read_text(encoding="utf-8")
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no {TABLE_START} ... {TABLE_END} section")
    return text[start + len(TABLE_START):end].strip()


def executing():
    """True when ``KCC_DOCS_EXECUTE`` asks to execute the tutorials."""
    return os.environ.get("KCC_DOCS_EXECUTE", "false").strip().lower() in TRUE


# --- MkDocs events ----------------------------------------------------------------------------

def on_config(config):
    if executing():
        os.environ.setdefault("KCC_FAST", "1")  # inherited by the notebook kernels
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # why: keras_cv_course/__init__.py
        log.info("executing tutorials with KCC_FAST=%s", os.environ["KCC_FAST"])
        only = os.environ.get("KCC_DOCS_EXECUTE_ONLY")
        if only and "mkdocs-jupyter" in config.get("plugins", {}):
            skipped = [f"tutorials/{name}" for name in tutorial_files()
                       if not fnmatch.fnmatch(name, only)]
            config["plugins"]["mkdocs-jupyter"].config["execute_ignore"] = skipped
            log.info("executing only tutorials matching %r", only)
    return config


def strip_native_logs(html):
    """Drops TensorFlow's C++ start-up log lines from the stderr outputs of a notebook page.

    They (``cudart_stub.cc:31] Could not find cuda drivers ...``) are printed before
    ``TF_CPP_MIN_LOG_LEVEL`` takes effect; a stderr output left empty is removed.
    """
    def clean(match):
        kept = [line for line in html_unescape(match.group("text")).splitlines()
                if not NATIVE_LOG.match(line)]
        if not kept:
            return ""
        return match.group(0).replace(match.group("text"), html_escape("\n".join(kept) + "\n"))

    return STDERR_OUTPUT.sub(clean, html)


def on_page_content(html, page, config, files):
    if page.file.src_uri.startswith("tutorials/"):
        html = strip_native_logs(html)
    return html


def on_page_markdown(markdown, page, config, files):
    if COURSE_MAP_MARKER in markdown:
        depth = page.file.src_uri.count("/")
        markdown = markdown.replace(COURSE_MAP_MARKER,
                                    course_map_markdown(page_prefix="../" * depth))
    if MODEL_TABLE_MARKER in markdown:
        markdown = markdown.replace(MODEL_TABLE_MARKER, readme_model_table())
    return markdown
