"""How good a generative run's samples are, against its held-out split.

    report = sample_quality("runs/dcgan-1", classifier="runs/digits-resnet18")

Samples are drawn with the run's ``sampler`` (as ``kcc sample`` draws them)
and compared with the run's test images on the penultimate features of a
classifier that this project trained on the same data (``metrics.features_of``):
FID, KID and improved precision and recall. The same numbers for the same
network at its initial weights, built from the run's own config, say how
far training moved it. For a conditional model, samples are drawn for the
test split's labels, and ``class_accuracy`` is how often the classifier
names the class that was asked for. For a likelihood model (one whose
metrics report ``bits_per_dim``), the report adds the best pixel-independent
model's bits per dimension, fitted on the training split, as the baseline.
"""

import numpy as np

from keras_cv_course.generative import metrics
from keras_cv_course.generative.pixels import images_to_levels
from keras_cv_course.generative.sampling import draw, keras_forward

PRECISION_RECALL_K = 3


def sample_quality(run_path, classifier, num_samples=None, seed=0):
    """Scores a generative run's samples against its test split.

    Args:
        run_path: a generative run folder.
        classifier: a classifier run folder, ``.keras`` file or model trained
            on the same data (images of the same shape).
        num_samples: how many samples; by default as many as test images.
        seed: seed of the draws and of the untrained twin's weights.

    Returns:
        ``{"trained": scores, "untrained": scores, "samples": n}`` (plus
        ``bits_per_dim`` and ``pixel_independent_bits_per_dim`` for a
        likelihood model), where ``scores`` has ``fid``, ``kid``,
        ``precision``, ``recall`` and, for a conditional model,
        ``class_accuracy``.
    """
    from keras_cv_course.export.gate import split_arrays
    from keras_cv_course.runs import load_run

    run = load_run(run_path)
    classifier = _classifier(classifier)
    real, labels = split_arrays(run.bundle, "test")
    count = int(num_samples or len(real))
    record = run.model.sampler.record()
    class_ids = np.resize(labels, count) if record.get("classes") else None
    real_features = metrics.features_of(classifier, real)
    report = {"samples": count}
    for name, model in (("trained", run.model), ("untrained", untrained_twin(run, seed))):
        sampler = model.sampler
        images = draw(sampler.record(), keras_forward(sampler.network), count, seed, class_ids)
        report[name] = score_samples(images, real_features, classifier, class_ids)
    report.update(likelihood_baseline(run, _read_metrics(run)))
    return report


def report_lines(report):
    """``sample_quality``'s report as ``name=value`` lines, the trained model's first."""
    lines = [f"sample quality ({report['samples']} samples against the test split, on the "
             "classifier's features):"]
    for which in ("untrained", "trained"):
        scores = ", ".join(f"{key}={value:.4f}" for key, value in report[which].items())
        lines.append(f"  {which:<9} {scores}")
    if "bits_per_dim" in report:
        lines.append(f"  likelihood bits_per_dim={report['bits_per_dim']:.4f}, pixel-independent "
                     f"baseline={report['pixel_independent_bits_per_dim']:.4f}")
    return lines


def score_samples(images, real_features, classifier, class_ids=None):
    """FID, KID, precision and recall of ``images`` (and class accuracy when asked for)."""
    fake_features = metrics.features_of(classifier, images)
    # Half of the smaller set per subset, so that the subsets differ and kid_std means something.
    subset = max(2, min(len(real_features), len(fake_features), 2000) // 2)
    kid, kid_std = metrics.kernel_inception_distance(real_features, fake_features,
                                                     subset_size=subset)
    precision, recall = metrics.precision_recall(real_features, fake_features,
                                                 k=PRECISION_RECALL_K)
    scores = {"fid": metrics.frechet_distance(real_features, fake_features), "kid": kid,
              "kid_std": kid_std, "precision": precision, "recall": recall}
    if class_ids is not None:
        predicted = np.asarray(classifier.predict(images, verbose=0)).argmax(axis=-1)
        scores["class_accuracy"] = float(np.mean(predicted == np.asarray(class_ids)))
    return scores


def untrained_twin(run, seed=0):
    """The run's network at its initial weights: the same config, data and overrides."""
    import keras

    from keras_cv_course import applications
    from keras_cv_course.training import build_for_data

    keras.utils.set_random_seed(seed)
    info = applications.get_info(run.config["model"])
    return build_for_data(info, run.bundle, run.config["config"],
                          **run.config["model_overrides"])


def likelihood_baseline(run, run_metrics):
    """``bits_per_dim`` and the pixel-independent baseline, for a likelihood model; else ``{}``."""
    from keras_cv_course.export.gate import split_arrays

    bits = run_metrics.get("bits_per_dim")
    levels = run.model.sampler.settings.get("levels")
    if bits is None or levels is None:
        return {}
    train, test = (split_arrays(run.bundle, split)[0] for split in ("train", "test"))
    baseline = metrics.pixel_independent_bits_per_dimension(
        images_to_levels(train, levels), images_to_levels(test, levels), levels)
    return {"bits_per_dim": float(bits), "pixel_independent_bits_per_dim": float(baseline)}


def _read_metrics(run):
    import json

    with open(run.folder.metrics_json, encoding="utf-8") as handle:
        return json.load(handle)


def _classifier(classifier):
    import keras

    if isinstance(classifier, keras.Model):
        return classifier
    from keras_cv_course.generative.commands import load_model_file

    return load_model_file(classifier)
