"""The ``kcc`` command (also ``python -m keras_cv_course``).

    kcc --version
    kcc tasks
    kcc models [--task T] [--pattern P]
    kcc info MODEL
    kcc train MODEL --data D [--config tiny|full --epochs N --strategy S --out RUN ...]
    kcc evaluate RUN [--classifier CLASSIFIER_RUN]
    kcc export RUN [--formats savedmodel tflite onnx] [--out DIR]
    kcc export RUN --quantize fp16|dynamic|int8|int8-io|16x8|qat|prune|cluster
    kcc bench RUN [--runs N]
    kcc predict RUN IMAGE... [--out DIR] [--artifact FILE]
    kcc sample RUN [--n 64] [--out grid.png] [--artifact FILE] [--classes 0,1,2]
    kcc explain RUN IMAGE... --method saliency|smoothgrad|guided|gradcam|guided_gradcam|occlusion
    kcc dream RUN IMAGE --out PNG
    kcc stylize IMAGE --style STYLE_IMAGE --out PNG   (or --network NET.keras)
    kcc quickstart [--task T]

The CLI only parses arguments and prints; the library does the work.

Exit statuses: 0 done; 2 a user's mistake (one line, never a traceback,
nothing written); 1 an unexpected failure (one line; ``KCC_DEBUG=1`` shows
the traceback); 128 + N stopped by signal N (Ctrl-C is 130), with a line
saying how to resume. Commands are quiet (no TensorFlow, CUDA or absl log
lines, no Python warnings) unless ``--verbose`` is given.
"""

import argparse
import ast
import contextlib
import logging
import math
import os
import sys
import warnings

from keras_cv_course import __version__
from keras_cv_course.errors import KCCError

EXIT_USER_ERROR = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def main(argv=None):
    """Entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a parse error already printed
        return stop.code if isinstance(stop.code, int) else EXIT_USER_ERROR
    with _quiet_unless(args.verbose):
        return _run(args)


def _run(args):
    try:
        return args.handler(args) or 0
    except KCCError as error:
        print(f"kcc: error: {_one_line(error)}", file=sys.stderr)
        return getattr(error, "exit_status", EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("kcc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # the machine's answer about a path: permissions, space, ...
        where = f" {error.filename!r}" if error.filename else ""
        print(f"kcc: error: cannot use{where}: {error.strerror or _one_line(error)}",
              file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:  # noqa: BLE001 - the CLI never shows a traceback
        if os.environ.get("KCC_DEBUG"):
            raise
        print(f"kcc: error: {type(error).__name__}: {_one_line(error)[:300]} (KCC_DEBUG=1 "
              "shows the traceback)", file=sys.stderr)
        return EXIT_FAILED


def _one_line(error):
    return " ".join(str(error).split())


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, like every other kcc error."""

    def error(self, message):
        print(f"kcc: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def positive_int(text):
    """An ``argparse`` type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text):
    """An ``argparse`` type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def image_side(text):
    """An ``argparse`` type: an image side in pixels, 8 to ``MAX_IMAGE_SIDE``."""
    from keras_cv_course.specs import MAX_IMAGE_SIDE, MIN_IMAGE_SIDE

    value = positive_int(text)
    if not MIN_IMAGE_SIDE <= value <= MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"expected an image side from {MIN_IMAGE_SIDE} to "
                                         f"{MAX_IMAGE_SIDE} pixels, got {text!r}")
    return value


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's log lines and Python warnings")
    parser = OneLineParser(prog="kcc", parents=[common], description="keras_cv_course: train, "
                           "evaluate and export the models of a computer-vision course.")
    parser.add_argument("--version", action="version", version=f"kcc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands.add_parser = _with_parents(commands.add_parser, common)

    models = commands.add_parser("models", help="list registered models")
    models.add_argument("--task", help="a task name; `kcc tasks` lists them")
    models.add_argument("--pattern", help="shell-style name pattern, e.g. 'resnet*'")
    models.set_defaults(handler=cmd_models)

    info = commands.add_parser("info", help="paper, size, specs, configs and exports of a model")
    info.add_argument("model")
    info.set_defaults(handler=cmd_info)

    tasks = commands.add_parser("tasks", help="list the registered tasks")
    tasks.set_defaults(handler=cmd_tasks)

    train = commands.add_parser("train", help="train a model and write a run folder")
    train.add_argument("model")
    train.add_argument("--config", choices=["tiny", "full"], default="full",
                       help="the registry's tiny config (minutes on a CPU) or full config")
    train.add_argument("--data", required=True, help="digits, shapes, cifar10, ..., folder:PATH")
    train.add_argument("--epochs", type=positive_int, default=10)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate")
    train.add_argument("--optimizer", default="adam")
    train.add_argument("--schedule", choices=["cosine", "linear", "step", "inverse_sqrt",
                                              "one_cycle"], help="learning-rate schedule")
    train.add_argument("--warmup-epochs", type=int, choices=range(0, 1000), default=0,
                       metavar="N")
    train.add_argument("--strategy", default="auto",
                       help="auto, default, one_device, mirrored, multiworker or tpu")
    train.add_argument("--workers", metavar="HOST:PORT,...",
                       help="multiworker: every worker's address, the chief first")
    train.add_argument("--task-index", type=int, metavar="I",
                       help="multiworker: this worker's position in --workers")
    train.add_argument("--deterministic", action="store_true",
                       help="deterministic ops: a resumed run ends with the weights of an "
                       "uninterrupted one")
    train.add_argument("--steps-per-execution", type=positive_int, default=1, metavar="N",
                       help="training steps per compiled call")
    train.add_argument("--cache", metavar="memory|DIR",
                       help="keep decoded examples after the first epoch, in memory or in "
                       "files under DIR (TFDS and folder data decode once)")
    train.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    train.add_argument("--image-size", type=image_side, nargs=2, metavar=("H", "W"))
    train.add_argument("--channels", type=int, choices=(1, 3))
    train.add_argument("--skip-bad-images", action="store_true",
                       help="folder data: leave out corrupt, unsupported or odd images "
                       "(config.json lists them) instead of stopping")
    train.add_argument("--augment", help="batch augmentation policy of the model's task "
                       "(classification: standard, mixup, cutmix; segmentation: flip)")
    train.add_argument("--adversarial-epsilon", type=positive_float, metavar="EPS",
                       help="PGD adversarial training (Madry et al.) at this L-infinity "
                       "radius, for pixels in [0, 1]")
    train.add_argument("--adversarial-steps", type=positive_int, default=7, metavar="N",
                       help="PGD steps per training batch")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backup-every-steps", type=positive_int)
    train.add_argument("--out", help="run folder (default runs/MODEL-TIME)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="builder argument, e.g. --set stage_widths=16,32,64,64")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a run's model on its test split")
    evaluate.add_argument("run")
    evaluate.add_argument("--classifier", help="generative runs: a classifier run on the same "
                          "data, whose features score samples against the test split (FID, KID, "
                          "precision, recall, class accuracy)")
    evaluate.add_argument("--samples", type=positive_int, help="with --classifier: how many "
                          "samples (default: as many as test images)")
    evaluate.set_defaults(handler=cmd_evaluate)

    export = commands.add_parser("export", help="export a run to SavedModel, TFLite and ONNX")
    export.add_argument("run", help="run folder or .keras file")
    export.add_argument("--formats", nargs="+", help="savedmodel, tflite, onnx (default: all "
                        "three; with --quantize, the formats the mode writes)")
    export.add_argument("--out", help="export folder (default RUN/export, or RUN/export-MODE)")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument("--quantize", metavar="MODE", help="fp16, dynamic, int8, int8-io, 16x8 "
                        "(post-training), or qat, prune, cluster (trained on a tf_keras twin)")
    export.add_argument("--calibration-samples", type=positive_int, default=200,
                        help="training images that calibrate the int8 modes")
    export.add_argument("--io-dtype", choices=("int8", "uint8"), default="int8",
                        help="the input and output type of int8-io")
    export.add_argument("--per-channel", action="store_true",
                        help="ONNX: one scale per output channel of each weight")
    export.add_argument("--epochs", type=positive_int, default=1,
                        help="qat, prune, cluster: fine-tuning epochs")
    export.add_argument("--lr", type=positive_float, default=None,
                        help="qat, prune, cluster: fine-tuning learning rate (default: 1e-5 "
                        "for qat, 1e-4 for prune and cluster)")
    export.add_argument("--sparsity", type=positive_float, default=0.5,
                        help="prune: the final fraction of zero weights")
    export.add_argument("--clusters", type=positive_int, default=16,
                        help="cluster: shared values per weight tensor")
    export.add_argument("--serving-option", action="append", default=[], metavar="KEY=VALUE",
                        type=serving_option, help="a setting of the task's serving graph, e.g. "
                        "max_detections=50 for a detector (repeatable)")
    export.set_defaults(handler=cmd_export)

    bench = commands.add_parser("bench", help="size, latency and metric of every exported "
                                "artifact of a run, on every runtime")
    bench.add_argument("run")
    bench.add_argument("--runs", type=positive_int, default=50, help="timed calls per row")
    bench.add_argument("--warmup", type=positive_int, default=5, help="untimed calls first")
    bench.add_argument("--limit", type=positive_int, help="score at most this many test images")
    bench.set_defaults(handler=cmd_bench)

    predict = commands.add_parser("predict", help="run a model on image files; write pictures")
    predict.add_argument("run", help="run folder or .keras file")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--out", help="folder for one PNG per image (default: print only)")
    predict.add_argument("--artifact", help="an exported .tflite, .onnx or SavedModel folder "
                         "to run instead of the Keras model")
    predict.set_defaults(handler=cmd_predict)

    sample = commands.add_parser("sample", help="draw images from a generative model or "
                                 "its exported artifact; write a grid PNG")
    sample.add_argument("run", help="run folder or .keras file of a generative model")
    sample.add_argument("--n", type=positive_int, default=64, help="number of images")
    sample.add_argument("--out", default="samples.png", help="the grid PNG to write")
    sample.add_argument("--artifact", help="an exported .tflite, .onnx or SavedModel folder "
                        "to sample from instead of the Keras model")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--classes", type=class_list, help="conditional models: class ids, "
                        "comma-separated, repeated to --n (e.g. 7 or 0,1,2)")
    sample.add_argument("--steps", type=positive_int, help="diffusion: DDIM steps")
    sample.set_defaults(handler=cmd_sample)

    _add_understanding_commands(commands)

    quickstart = commands.add_parser("quickstart",
                                     help="a task's main job: train, export, verify")
    quickstart.add_argument("--out")
    quickstart.add_argument("--task", default="classification",
                            help="a task with a quickstart recipe (default: classification)")
    quickstart.add_argument("--epochs", type=positive_int, help="default: the recipe's")
    quickstart.set_defaults(handler=cmd_quickstart)
    return parser


def cmd_models(args):
    from keras_cv_course import applications

    rows = [applications.get_info(name) for name in
            applications.list_models(task=args.task, pattern=args.pattern)]
    width = max([len(info.name) for info in rows] + [21]) + 1
    print(f"{'model':<{width}}{'task':<16}{'family':<14}{'reference params':>18}  exports")
    for info in rows:
        params = f"{info.reference_params:,}" if info.reference_params else "-"
        exports = ",".join(fmt for fmt in applications.EXPORT_FORMATS if info.supports_export(fmt))
        print(f"{info.name:<{width}}{info.task:<16}{info.family:<14}{params:>18}  {exports}")
    print(f"{len(rows)} models")


def cmd_info(args):
    from keras_cv_course.applications import catalog

    print("\n".join(catalog.describe(args.model)))


def cmd_tasks(args):
    from keras_cv_course import applications, tasks

    print(f"{'task':<18}{'models':>7}  {'headline metrics':<22}description")
    for name in tasks.list_tasks():
        task = tasks.get_task(name)
        count = len(applications.list_models(task=name))
        print(f"{name:<18}{count:>7}  {', '.join(task.headline_metrics):<22}{task.description}")


def cmd_train(args):
    from keras_cv_course.training import train

    run = train(args.model, args.data, args.out, config=args.config, epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.lr, optimizer=args.optimizer, strategy=args.strategy,
                precision=args.precision, jit_compile=_jit(args.jit_compile),
                image_size=args.image_size, channels=args.channels, seed=args.seed,
                augment=args.augment, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                backup_every_steps=args.backup_every_steps, skip_bad_images=args.skip_bad_images,
                workers=args.workers, task_index=args.task_index,
                deterministic=args.deterministic, steps_per_execution=args.steps_per_execution,
                cache=args.cache, adversarial_epsilon=args.adversarial_epsilon,
                adversarial_steps=args.adversarial_steps,
                **parse_overrides(args.set))
    print(f"run folder: {run.path}")
    _print_metrics(run.metrics, args.model)


def cmd_evaluate(args):
    from keras_cv_course.evaluation import evaluate_run
    from keras_cv_course.runs import RunFolder

    metrics = evaluate_run(args.run)
    _print_metrics(metrics, RunFolder(args.run).read_config()["model"])
    if args.classifier:
        from keras_cv_course.generative.quality import report_lines, sample_quality

        for line in report_lines(sample_quality(args.run, args.classifier, args.samples)):
            print(line)


def _print_metrics(metrics, model_name):
    """The task's headline metrics first, then every metric."""
    from keras_cv_course import applications, tasks

    task = tasks.get_task(applications.get_info(model_name).task)
    headline = task.headline(metrics)
    print(f"{task.name} headline: " + ", ".join(f"{k}={v:.4f}" for k, v in headline.items()))
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def serving_option(text):
    """``KEY=VALUE`` -> ``(key, number)`` for ``--serving-option``."""
    key, separator, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not separator or not key or number is None:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, e.g. max_detections=50; "
                                         f"got {text!r}")
    return key, int(number) if number.is_integer() and "." not in value else number


def cmd_export(args):
    from keras_cv_course.export import export
    from keras_cv_course.export.api import default_folder
    from keras_cv_course.export.quantize import QuantizeOptions

    options = args.quantize and QuantizeOptions(
        args.quantize, samples=args.calibration_samples, per_channel=args.per_channel,
        io_dtype=args.io_dtype, epochs=args.epochs, learning_rate=args.lr,
        sparsity=args.sparsity, clusters=args.clusters)
    out = args.out or default_folder(args.run, options or None)
    manifest = export(args.run, out, formats=args.formats, overwrite=args.overwrite,
                      quantize=options or None, serving_options=dict(args.serving_option))
    parts = manifest.get("parts", {"": manifest})  # several served networks: one folder each
    for part, described in parts.items():
        for fmt, entry in described["artifacts"].items():
            print(f"{fmt:<11} {entry['mode']:<8} {entry['bytes']:>12,} bytes  "
                  f"{entry['op_count']:>5} ops  {_verdict(entry)}  "
                  f"{os.path.join(out, part, entry['path'])}")
    print(f"manifest: {os.path.join(out, 'manifest.json')}")


def _verdict(entry):
    """The gate an artifact passed: the task metric, or its largest parity error."""
    if "gate" in entry:
        gate = entry["gate"]
        return (f"{gate['metric']} {gate['artifact']:.4f} (Keras {gate['keras']:.4f}), "
                f"agreement {gate['agreement']:.2%}")
    return f"max error {max(entry['parity']['errors'].values()):.2e}"


def cmd_bench(args):
    from keras_cv_course.export.bench import bench_run, write_bench

    rows = bench_run(args.run, runs=args.runs, warmup=args.warmup, limit=args.limit)
    markdown, json_path = write_bench(rows, args.run, settings={
        "run": args.run, "runs": args.runs, "warmup": args.warmup, "limit": args.limit})
    with open(markdown, encoding="utf-8") as handle:
        print(handle.read().rstrip())
    print(f"written: {markdown} {json_path}")


def cmd_predict(args):
    from keras_cv_course.predict import predict

    results = predict(args.run, args.images, out_dir=args.out, artifact=args.artifact)
    for path, _, lines in results:
        print(f"{path}: {'; '.join(lines)}")
    if args.out:
        print(f"pictures: {args.out}")


def class_list(text):
    """``"0,3,7"`` -> ``[0, 3, 7]``: class ids for a conditional model."""
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class ids like 7 or 0,1,2, got {text!r}") \
            from None
    if min(ids) < 0:
        raise argparse.ArgumentTypeError(f"class ids must be >= 0, got {text!r}")
    return ids


def cmd_sample(args):
    from keras_cv_course.generative.commands import sample

    images = sample(args.run, args.n, args.out, args.artifact, args.seed, args.classes,
                    args.steps)
    source = args.artifact or args.run
    print(f"{len(images)} samples of {source} (seed {args.seed}, mean pixel "
          f"{float(images.mean()):.3f}): {args.out}")


def _add_understanding_commands(commands):
    from keras_cv_course.understanding import EXPLAIN_METHODS

    explain = commands.add_parser("explain", help="saliency, Grad-CAM and other maps of a "
                                  "classifier's decision, as PNGs")
    explain.add_argument("run", help="run folder or .keras classifier")
    explain.add_argument("images", nargs="+", metavar="IMAGE")
    explain.add_argument("--method", choices=list(EXPLAIN_METHODS), default="saliency")
    explain.add_argument("--class-index", type=int, metavar="K",
                         help="the class to explain (default: the predicted one)")
    explain.add_argument("--out", default="explain", help="folder for the PNGs")
    explain.set_defaults(handler=cmd_explain)

    dream = commands.add_parser("dream", help="DeepDream an image with a classifier")
    dream.add_argument("run", help="run folder or .keras classifier")
    dream.add_argument("image")
    dream.add_argument("--out", required=True, help="the PNG to write")
    dream.add_argument("--layers", help="comma-separated layer names (default: the last "
                       "feature map)")
    dream.add_argument("--octaves", type=positive_int, default=3)
    dream.add_argument("--steps", type=positive_int, default=10, help="steps per octave")
    dream.set_defaults(handler=cmd_dream)

    stylize = commands.add_parser("stylize", help="neural style transfer of a photo")
    stylize.add_argument("image")
    stylize.add_argument("--out", required=True, help="the PNG to write")
    stylize.add_argument("--style", help="style image: optimise the photo (Gatys et al.)")
    stylize.add_argument("--network", help="a trained feed-forward network, .keras "
                         "(Johnson et al.)")
    stylize.add_argument("--size", type=image_side, default=256)
    stylize.add_argument("--steps", type=positive_int, default=200)
    stylize.add_argument("--vgg-weights", default="auto", help="VGG-16 weights of the "
                         "perceptual features: auto (ImageNet if in the Keras cache, else the "
                         "project's, trained once on shapes), project, imagenet, random, or a "
                         ".weights.h5 file")
    stylize.set_defaults(handler=cmd_stylize)


def cmd_explain(args):
    from keras_cv_course.understanding.commands import explain

    for path, name, probability in explain(args.run, args.images, args.method, args.out,
                                           args.class_index):
        print(f"{path}: {args.method} of {name} (p={probability:.3f})")


def cmd_dream(args):
    from keras_cv_course.understanding.commands import dream

    layers = args.layers.split(",") if args.layers else None
    dream(args.run, args.image, args.out, layers, args.octaves, args.steps)
    print(f"written: {args.out}")


def cmd_stylize(args):
    from keras_cv_course.understanding.commands import stylize

    _, note = stylize(args.image, args.out, args.style, args.network, args.size, args.steps,
                      args.vgg_weights)
    print(note)
    print(f"written: {args.out}")


def cmd_quickstart(args):
    from keras_cv_course.quickstart import run_quickstart

    _, passed = run_quickstart(task=args.task, out=args.out, epochs=args.epochs)
    return 0 if passed else EXIT_FAILED


def parse_overrides(pairs):
    """Parses ``KEY=VALUE`` builder arguments; values are Python literals."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise KCCError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


def _jit(value):
    return {"auto": "auto", "true": True, "false": False}[value]


def _with_parents(add_parser, parent):
    """Every subcommand takes the common options (``--verbose``)."""

    def add(name, **kwargs):
        return add_parser(name, parents=[parent], **kwargs)

    return add


@contextlib.contextmanager
def _quiet_unless(verbose):
    """Silences TensorFlow's and LiteRT's C++ log lines, absl and warnings, unless ``verbose``.

    The C++ libraries write to file descriptor 2 directly, some while they
    load and some (LiteRT's "Created delegate" line) at run time, and not
    every line obeys a log level. So descriptor 2 goes to ``/dev/null`` for
    the whole command, while Python's ``sys.stderr``, which carries kcc's
    own messages, keeps writing to the real stderr. ``KCC_DEBUG=1`` counts
    as ``--verbose``.
    """
    if verbose or os.environ.get("KCC_DEBUG"):
        yield
        return
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl", "h5py")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _descriptor_2_silenced():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _descriptor_2_silenced():
    """Points descriptor 2 at ``/dev/null``; ``sys.stderr`` keeps the real stderr."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    python_stderr = sys.stderr
    if _writes_to_descriptor_2(python_stderr):
        sys.stderr = open(saved, "w", buffering=1, encoding=python_stderr.encoding,
                          errors="backslashreplace", closefd=False)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        if sys.stderr is not python_stderr:
            sys.stderr.flush()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _writes_to_descriptor_2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # pytest's capture, or a StringIO
        return False


if __name__ == "__main__":
    sys.exit(main())
