"""Runs on disk: the layout of a training run's folder, and loading it back.

``train`` writes a run folder; ``evaluate`` and ``export`` read it through
one function, ``load_run``. Training code is imported only inside functions.

    RUN/
      config.json        model, data and hyperparameters (enough to rebuild)
      logs/              TensorBoard: train/, validation/, images/
      checkpoints/       best.keras (lowest validation loss)
      backup/            BackupAndRestore state until model.keras is written; a
                         folder without model.keras is unfinished and resumes from it
      history.csv        one row per epoch
      model.keras        the final model, written atomically
      metrics.json       test-split metrics of the final model
"""

import dataclasses
import json
import os
import shlex
import zipfile

from keras_cv_course import __version__
from keras_cv_course.errors import KCCError


@dataclasses.dataclass
class LoadedRun:
    """A finished run read back from disk.

    Attributes:
        folder: the ``RunFolder``.
        config: its ``config.json``.
        model: the final model.
        bundle: the run's dataset, rebuilt from the config.
        task: the run's task object.
    """

    folder: "RunFolder"
    config: dict
    model: object
    bundle: object
    task: object


def load_run(path):
    """Loads a run's config, final model and dataset.

    Raises:
        KCCError: not a run folder, an unfinished run, a run made by a newer
            version of the package, a missing or corrupt model file, or a
            model that does not take the run's data.
    """
    from keras_cv_course.data import load_dataset
    from keras_cv_course.tasks import get_task
    from keras_cv_course.training.train import check_model_fits_data

    folder = RunFolder(str(path))
    config = folder.read_config()
    if not os.path.exists(folder.model_file):
        raise KCCError(f"unfinished run {folder.path!r} (no model.keras); resume with: "
                       f"{resume_command(config, folder.path)}")
    model = folder.load_model()
    bundle = load_dataset(config["data"], config["task"], config["image_size"],
                          config["channels"], config["seed"],
                          skip_bad_images=bool(config.get("skipped_images")))
    check_model_fits_data(model, bundle, where=f"the model of run {folder.path!r}")
    return LoadedRun(folder, config, model, bundle, get_task(config["task"]))


def resume_command(config, path):
    """The ``kcc train`` command that resumes (or repeats) the run of ``config``."""
    words = ["kcc", "train", config["model"], "--data", config["data"], "--out", path,
             "--config", config.get("config", "full"), "--epochs", config["epochs"],
             "--batch-size", config["batch_size"], "--lr", config["learning_rate"],
             "--optimizer", config["optimizer"], "--strategy", config["strategy"],
             "--seed", config["seed"], "--image-size", *config["image_size"],
             "--channels", config["channels"]]
    optional = {"--schedule": config.get("schedule"), "--augment": config.get("augment"),
                "--precision": config.get("precision"),
                "--warmup-epochs": config.get("warmup_epochs") or None,
                "--workers": config.get("workers"), "--cache": config.get("cache"),
                "--task-index": config.get("task_index"),
                "--adversarial-epsilon": config.get("adversarial_epsilon"),
                "--adversarial-steps": config.get("adversarial_steps"),
                "--steps-per-execution": (config.get("steps_per_execution")
                                          if config.get("steps_per_execution", 1) > 1 else None)}
    words += [word for flag, value in optional.items() if value is not None
              for word in (flag, value)]
    if config.get("skipped_images"):
        words.append("--skip-bad-images")
    if config.get("deterministic"):
        words.append("--deterministic")
    for key, value in (config.get("model_overrides") or {}).items():
        words += ["--set", f"{key}={_literal(value)}"]
    return " ".join(shlex.quote(str(word)) for word in words)


def _literal(value):
    """A JSON value back as the Python literal ``--set`` parses (lists were tuples)."""
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder."""

    path: str

    @property
    def config_json(self):
        return os.path.join(self.path, "config.json")

    @property
    def logs_dir(self):
        return os.path.join(self.path, "logs")

    @property
    def backup_dir(self):
        return os.path.join(self.path, "backup")

    @property
    def best_checkpoint(self):
        return os.path.join(self.path, "checkpoints", "best.keras")

    @property
    def history_csv(self):
        return os.path.join(self.path, "history.csv")

    @property
    def model_file(self):
        return os.path.join(self.path, "model.keras")

    @property
    def metrics_json(self):
        return os.path.join(self.path, "metrics.json")

    def create(self):
        os.makedirs(os.path.join(self.path, "checkpoints"), exist_ok=True)
        os.makedirs(self.logs_dir, exist_ok=True)
        return self

    def write_json(self, path, payload):
        """Writes JSON atomically: a temporary file, then a rename."""
        temporary = f"{path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        os.replace(temporary, path)

    def read_config(self):
        """The run's ``config.json``.

        Raises:
            KCCError: no config, one that is not JSON, or one written by a
                newer version of the package (whose runs this one may misread).
        """
        if not os.path.exists(self.config_json):
            raise KCCError(f"not a run folder (no config.json): {self.path!r}")
        try:
            with open(self.config_json, encoding="utf-8") as handle:
                config = json.load(handle)
        except (ValueError, UnicodeDecodeError) as error:
            raise KCCError(f"run config {self.config_json!r} is not valid JSON ({error})") \
                from None
        made_by = config.get("package_version", "0")
        if _version_tuple(made_by) > _version_tuple(__version__):
            raise KCCError(f"run {self.path!r} was made by keras_cv_course {made_by}, newer than "
                           f"this {__version__}; upgrade with pip install -U keras_cv_course")
        return config

    def save_model(self, model):
        """Saves the final model atomically."""
        save_keras_atomically(model, self.model_file)

    def load_model(self):
        """Loads the final model; a corrupt or missing file is a one-line error."""
        return load_keras_file(self.model_file)


def save_keras_atomically(model, path):
    """Saves ``model`` to ``path`` through a temporary file and a rename."""
    write_atomically(path, model.save, suffix=".keras")


def write_atomically(path, write, suffix=""):
    """Calls ``write(temporary)``, then renames the temporary file to ``path``.

    A failure (a full disk, say) leaves the previous file at ``path`` intact.

    Args:
        path: the file to write.
        write: writes a file at the path it is given.
        suffix: the ending ``write`` needs (Keras checks ``.keras`` and
            ``.weights.h5``), kept at the end of the temporary name.

    Raises:
        KCCError: the file could not be written, naming why.
    """
    temporary = f"{path}.tmp{suffix}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        kept = "the previous file is intact" if os.path.exists(path) else "nothing was written"
        raise KCCError(f"could not save {path!r}: {error.strerror or error}; {kept}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load_keras_file(path):
    """Loads a ``.keras`` file with ``safe_mode=True``.

    Safe mode refuses files that would run Python code when loaded, such as
    a ``Lambda`` layer holding a lambda. If you trust the file's author,
    ``keras.saving.load_model(path, safe_mode=False)`` loads it, and runs
    that code with your permissions: never do that with a file from a
    stranger.

    Raises:
        KCCError: each reason in its own words: a missing file, a file that
            is not a zip archive, one refused by safe mode (naming the layers
            and Keras' reason in full), or one that is otherwise corrupt.
    """
    import keras

    import keras_cv_course.applications  # noqa: F401 - registers custom objects
    import keras_cv_course.layers  # noqa: F401
    import keras_cv_course.training.optimizers  # noqa: F401 - a run's optimizer and schedule
    import keras_cv_course.training.schedules  # noqa: F401

    path = str(path)
    if not os.path.isfile(path):
        raise KCCError(f"model file not found: {path!r}")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise KCCError(f"cannot load {path!r}: not a .keras file (a .keras file is a zip "
                       "archive, and this one is not)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - zip, JSON and h5 errors all mean "corrupt"
        reason = " ".join(str(error).split())
        if "safe_mode" in reason:
            raise KCCError(f"cannot load {path!r}: Keras safe mode refused layer(s) "
                           f"{_lambda_layers(path)}: {reason}") from None
        raise KCCError(f"cannot load {path!r}: not a valid .keras file "
                       f"({type(error).__name__}: {reason[:400]})") from None


def _lambda_layers(path):
    """Names of the ``Lambda`` layers in a ``.keras`` archive's config."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(node.get("config", {}).get("name", "?"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found or ["?"]


def _version_tuple(version):
    parts = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
