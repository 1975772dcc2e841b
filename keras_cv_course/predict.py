"""``predict``: a run's model (or one of its exported artifacts) on image files.

    pictures = predict("runs/resnet18-1", ["cat.png"], out_dir="pictures")

Each image is read with Pillow, checked (``data.image_files``), converted
to the model's channels and resized to its input size. The model's
serving signature (the same one ``export`` writes, so Keras and every
artifact give the same outputs) runs on it, and the model's task draws the
result (``Task.prediction_picture``): top-5 labels for classification, a
class overlay for segmentation. Every image is read before any picture is
written, so a bad file leaves nothing behind.
"""

import os

import numpy as np

from keras_cv_course.data.image_files import inspect_image
from keras_cv_course.errors import KCCError

ARTIFACT_FORMATS = {".tflite": "tflite", ".onnx": "onnx", "": "savedmodel"}
"""The runtime an artifact runs in, by its file suffix (a folder is a SavedModel)."""
PICTURE_SIDE = 192
"""Pictures are enlarged (nearest neighbour) to at least this many pixels a side."""


def predict(source, image_paths, out_dir=None, artifact=None):
    """Runs a model on image files; optionally writes one PNG per image.

    Args:
        source: a run folder or a ``.keras`` file.
        image_paths: image files (JPEG, PNG, BMP or GIF).
        out_dir: where to write ``<image name>.png`` pictures; ``None`` writes none.
        artifact: an exported ``.tflite``, ``.onnx`` or SavedModel folder to
            run instead of the Keras model.

    Returns:
        One ``(image path, outputs, lines)`` per image: the serving outputs
        (no batch axis) and the task's text lines.

    Raises:
        KCCError: a bad image file, a bad source or artifact, or an output
            folder that cannot be written.
    """
    model, task, image_shape, class_names = open_source(source, artifact is not None)
    images = [read_image(path, image_shape) for path in image_paths]
    run = open_pipeline(task, model, artifact)
    results = []
    for path, image in zip(image_paths, images):
        outputs = {key: np.asarray(value)[0] for key, value in _call(run, image).items()}
        picture, lines = task.prediction_picture(image, outputs, class_names)
        extras = task.extra_pictures(image, outputs, class_names)
        results.append((path, outputs, lines, picture, extras))
    if out_dir is not None:
        _write_pictures(out_dir, results)
    return [(path, outputs, lines) for path, outputs, lines, _, _ in results]


def open_pipeline(task, model, artifact=None):
    """The task's inference on a batch of images, from the Keras model or from artifacts.

    The served networks (``Task.serving_parts``) run as the Keras serving
    function, or as the exported artifacts: ``artifact`` names one artifact,
    and the other parts of the same export are found beside it
    (``open_artifact_parts``). ``Task.pipeline`` joins them (a captioner's
    decode loop; the one network itself for other tasks)."""
    if artifact is None:
        parts = {name: keras_part(network, task)
                 for name, network in task.serving_parts(model).items()}
        return task.pipeline(parts, task.export_record(model))
    parts, manifest = open_artifact_parts(artifact)
    return task.pipeline(parts, manifest)


def keras_part(network, task):
    """A served network's Keras serving function on NumPy: ``inputs -> {name: array}``."""
    import keras

    from keras_cv_course import specs
    from keras_cv_course.export.api import serving_function

    serve = serving_function(network, task)
    names = [spec.name for spec in specs.specs_of_model_inputs(network)]

    def run(inputs):
        named = inputs if isinstance(inputs, dict) else {names[0]: inputs}
        return {name: keras.ops.convert_to_numpy(value) for name, value in serve(named).items()}

    return run


def read_image(path, image_shape):
    """Reads an image file as ``image_shape`` ``(H, W, C)`` float32 in [0, 1].

    Raises:
        KCCError: the file is missing, not a decodable image, or too small or large.
    """
    from PIL import Image

    if not os.path.isfile(path):
        raise KCCError(f"image file not found: {path!r}")
    report = inspect_image(path)
    if report.problem:
        raise KCCError(f"cannot use image {path!r}: {report.problem}")
    height, width, channels = image_shape
    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype="float32") / 255.0
    return array.reshape(height, width, channels)


def open_source(source, need_no_model):
    """``(model or None, task, (H, W, C), class names)`` of a run folder or ``.keras`` file."""
    from keras_cv_course import applications, specs
    from keras_cv_course.export.api import GENERIC_TASK
    from keras_cv_course.runs import RunFolder, load_keras_file
    from keras_cv_course.tasks import get_task

    source = str(source)
    if os.path.isdir(source):
        folder = RunFolder(source)
        config = folder.read_config()
        model = None if need_no_model else folder.load_model()
        shape = (*config["image_size"], config["channels"])
        return model, get_task(config["task"]), shape, tuple(config.get("class_names", ()))
    model = load_keras_file(source)
    known = model.name in applications.list_models()
    task = get_task(applications.get_info(model.name).task) if known else GENERIC_TASK
    model_specs = specs.specs_of_model_inputs(model)
    shape = tuple(model_specs[0].shape)
    if len(model_specs) != 1 or len(shape) != 3 or None in shape or shape[-1] not in (1, 3):
        raise KCCError(f"predict takes models with one (height, width, 1 or 3) image input of "
                       f"a fixed size; {source!r} takes {[s.shape for s in model_specs]}")
    return model, task, shape, ()


def _call(run, image):
    """One image through the model or artifact; a refused input is a one-line error."""
    try:
        return run(image[None])
    except KCCError:
        raise
    except Exception as error:  # noqa: BLE001 - each runtime words its shape errors its own way
        reason = " ".join(str(error).split())[:300]
        raise KCCError(f"the model or artifact does not take images of shape {image.shape} "
                       f"(was it built for another input shape?): {reason}") from None


def open_artifact(artifact):
    """The runner of an exported ``.tflite``, ``.onnx`` or SavedModel folder, by its suffix.

    Raises:
        KCCError: a missing path or one that is none of the three.
    """
    from keras_cv_course.export.runners import load_runner

    artifact = str(artifact)
    if not os.path.exists(artifact):
        raise KCCError(f"artifact not found: {artifact!r}")
    suffix = os.path.splitext(artifact)[1] if os.path.isfile(artifact) else ""
    if suffix not in ARTIFACT_FORMATS:
        raise KCCError(f"artifact must be a .tflite file, a .onnx file or a SavedModel folder, "
                       f"got {artifact!r}")
    return load_runner(ARTIFACT_FORMATS[suffix], artifact)


def open_artifact_parts(artifact):
    """The runners of an export's parts, and its manifest, from one artifact's path.

    A one-network export has ``manifest.json`` beside its artifacts: the
    artifact is the one part. An export of several networks keeps each in
    a folder named after it (``export/decoder/model.tflite``): the same file
    name is loaded from every part's folder.

    Returns:
        ``({part name: runner}, manifest)``; the manifest is ``{}`` when none
        is found (an artifact copied on its own).
    """
    import json

    runner = open_artifact(artifact)
    folder = os.path.dirname(os.path.abspath(str(artifact)))
    export = os.path.dirname(folder)
    for where in (folder, export):
        path = os.path.join(where, "manifest.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        if where == export and os.path.basename(folder) in manifest.get("parts", {}):
            name = os.path.basename(os.path.abspath(str(artifact)))
            return {part: open_artifact(os.path.join(export, part, name))
                    for part in manifest["parts"]}, manifest
        if where == folder and "parts" not in manifest:
            return {"model": runner}, manifest
    return {"model": runner}, {}


def _write_pictures(out_dir, results):
    """Writes every picture (each through a temporary name), or raises before any."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise KCCError(f"cannot create the output folder {out_dir!r}: "
                       f"{error.strerror or error}") from None
    for path, _, lines, picture, extras in results:
        stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
        _write_png(draw_picture(picture, lines, os.path.basename(path)), f"{stem}.png")
        for suffix, extra in extras.items():
            _write_png(draw_picture(extra, [suffix], os.path.basename(path)),
                       f"{stem}-{suffix}.png")


def _write_png(image, target):
    """Saves a Pillow image through a temporary name, so no half-written file is left."""
    temporary = f"{target}.tmp"
    image.save(temporary, format="PNG")
    os.replace(temporary, target)


def draw_picture(picture, lines, title):
    """A Pillow image: ``title``, the enlarged ``picture``, then one text line each."""
    from PIL import Image, ImageDraw

    pixels = (np.clip(picture, 0.0, 1.0) * 255).astype("uint8")
    scale = max(1, -(-PICTURE_SIDE // min(pixels.shape[:2])))
    enlarged = Image.fromarray(pixels).resize((pixels.shape[1] * scale, pixels.shape[0] * scale),
                                              Image.Resampling.NEAREST)
    line_height = 14
    width = max(enlarged.width, 8 * max(len(line) for line in [title, *lines]))
    canvas = Image.new("RGB", (width, enlarged.height + line_height * (len(lines) + 1) + 8),
                       "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black")
    canvas.paste(enlarged, (0, line_height + 2))
    for index, line in enumerate(lines):
        draw.text((4, enlarged.height + line_height * (index + 1) + 4), line, fill="black")
    return canvas
