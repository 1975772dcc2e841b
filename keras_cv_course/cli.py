"""The ``kcc`` command (also ``python -m keras_cv_course``).

    kcc --version
    kcc tasks
    kcc models [--task T] [--pattern P]
    kcc info MODEL
    kcc train MODEL --data D [--config tiny|full --epochs N --strategy S --out RUN ...]
    kcc evaluate RUN
    kcc export RUN [--formats savedmodel tflite onnx] [--out DIR]
    kcc quickstart [--task T]

The CLI only parses arguments and prints; the library does the work. A
user's mistake prints one line and exits with status 2, never a traceback.
"""

import argparse
import ast
import os
import sys

from keras_cv_course import __version__
from keras_cv_course.errors import KCCError

EXIT_USER_ERROR = 2
EXIT_FAILED = 1


def main(argv=None):
    """Entry point; returns the exit status."""
    _quiet_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except KCCError as error:
        print(f"kcc: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("kcc: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as error:  # noqa: BLE001 - the CLI never shows a traceback
        if os.environ.get("KCC_DEBUG"):
            raise
        message = (str(error).strip().splitlines() or [""])[0][:200]
        print(f"kcc: error: {type(error).__name__}: {message} (KCC_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return EXIT_FAILED


def build_parser():
    parser = argparse.ArgumentParser(prog="kcc", description="keras_cv_course: train, evaluate "
                                     "and export the models of a computer-vision course.")
    parser.add_argument("--version", action="version", version=f"kcc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    train.add_argument("--epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--optimizer", default="adam")
    train.add_argument("--schedule", choices=["cosine", "linear", "step", "inverse_sqrt",
                                              "one_cycle"], help="learning-rate schedule")
    train.add_argument("--warmup-epochs", type=int, default=0)
    train.add_argument("--strategy", default="auto",
                       help="auto, default, one_device, mirrored, multiworker or tpu")
    train.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"])
    train.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    train.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"))
    train.add_argument("--channels", type=int)
    train.add_argument("--augment", help="batch augmentation policy of the model's task "
                       "(classification: standard, mixup, cutmix; segmentation: flip)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backup-every-steps", type=int)
    train.add_argument("--out", help="run folder (default runs/MODEL-TIME)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="builder argument, e.g. --set stage_widths=16,32,64,64")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a run's model on its test split")
    evaluate.add_argument("run")
    evaluate.set_defaults(handler=cmd_evaluate)

    export = commands.add_parser("export", help="export a run to SavedModel, TFLite and ONNX")
    export.add_argument("run", help="run folder or .keras file")
    export.add_argument("--formats", nargs="+", default=["savedmodel", "tflite", "onnx"])
    export.add_argument("--out", help="export folder (default RUN/export)")
    export.add_argument("--overwrite", action="store_true")
    export.set_defaults(handler=cmd_export)

    quickstart = commands.add_parser("quickstart",
                                     help="a task's main job: train, export, verify")
    quickstart.add_argument("--out")
    quickstart.add_argument("--task", default="classification",
                            help="a task with a quickstart recipe (default: classification)")
    quickstart.add_argument("--epochs", type=int, help="default: the recipe's")
    quickstart.set_defaults(handler=cmd_quickstart)
    return parser


def cmd_models(args):
    from keras_cv_course import applications

    rows = [applications.get_info(name) for name in
            applications.list_models(task=args.task, pattern=args.pattern)]
    print(f"{'model':<22}{'task':<16}{'family':<14}{'reference params':>18}  exports")
    for info in rows:
        params = f"{info.reference_params:,}" if info.reference_params else "-"
        exports = ",".join(fmt for fmt in applications.EXPORT_FORMATS if info.supports_export(fmt))
        print(f"{info.name:<22}{info.task:<16}{info.family:<14}{params:>18}  {exports}")
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
                backup_every_steps=args.backup_every_steps, **parse_overrides(args.set))
    print(f"run folder: {run.path}")
    _print_metrics(run.metrics, args.model)


def cmd_evaluate(args):
    from keras_cv_course.evaluation import evaluate_run
    from keras_cv_course.runs import RunFolder

    metrics = evaluate_run(args.run)
    _print_metrics(metrics, RunFolder(args.run).read_config()["model"])


def _print_metrics(metrics, model_name):
    """The task's headline metrics first, then every metric."""
    from keras_cv_course import applications, tasks

    task = tasks.get_task(applications.get_info(model_name).task)
    headline = task.headline(metrics)
    print(f"{task.name} headline: " + ", ".join(f"{k}={v:.4f}" for k, v in headline.items()))
    print("test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


def cmd_export(args):
    from keras_cv_course.export import export

    base = args.run if os.path.isdir(args.run) else os.path.dirname(os.path.abspath(args.run))
    out = args.out or os.path.join(base, "export")
    manifest = export(args.run, out, formats=args.formats, overwrite=args.overwrite)
    for fmt, entry in manifest["artifacts"].items():
        error = max(entry["parity"]["errors"].values())
        print(f"{fmt:<11} {entry['bytes']:>12,} bytes  {entry['op_count']:>5} ops  "
              f"max error {error:.2e}  {os.path.join(out, entry['path'])}")
    print(f"manifest: {os.path.join(out, 'manifest.json')}")


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


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


if __name__ == "__main__":
    sys.exit(main())
