"""Runs on disk: the layout of a training run's folder, and loading it back.

``train`` writes a run folder; ``evaluate`` and ``export`` read it through
one function, ``load_run``. This module imports no training code.

    RUN/
      config.json        model, data and hyperparameters (enough to rebuild)
      logs/              TensorBoard: train/, validation/, images/
      checkpoints/       best.keras (lowest validation loss)
      backup/            BackupAndRestore state while training runs
      history.csv        one row per epoch
      model.keras        the final model, written atomically
      metrics.json       test-split metrics of the final model
"""

import dataclasses
import json
import os

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
        KCCError: not a run folder, or its model file is missing or corrupt.
    """
    from keras_cv_course.data import load_dataset
    from keras_cv_course.tasks import get_task

    folder = RunFolder(str(path))
    config = folder.read_config()
    model = folder.load_model()
    bundle = load_dataset(config["data"], config["task"], config["image_size"],
                          config["channels"], config["seed"])
    return LoadedRun(folder, config, model, bundle, get_task(config["task"]))


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
        if not os.path.exists(self.config_json):
            raise KCCError(f"not a run folder (no config.json): {self.path!r}")
        with open(self.config_json, encoding="utf-8") as handle:
            return json.load(handle)

    def save_model(self, model):
        """Saves the final model atomically."""
        temporary = os.path.join(self.path, "model.tmp.keras")
        model.save(temporary)
        os.replace(temporary, self.model_file)

    def load_model(self):
        """Loads the final model; a corrupt or missing file is a one-line error."""
        return load_keras_file(self.model_file)


def load_keras_file(path):
    """Loads a ``.keras`` file with ``safe_mode=True``.

    Raises:
        KCCError: the file is missing or not a valid Keras archive.
    """
    import keras

    import keras_cv_course.applications  # noqa: F401 - registers custom objects
    import keras_cv_course.layers  # noqa: F401

    if not os.path.exists(path):
        raise KCCError(f"model file not found: {path!r}")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - zip, JSON and h5 errors all mean "corrupt"
        first_line = (str(error).strip().splitlines() or [""])[0][:160]
        raise KCCError(
            f"cannot load {path!r}: not a valid .keras file ({type(error).__name__}: {first_line})"
        ) from None
