"""Every example in the README runs and reaches what it says, at a smaller budget.

Each fenced ``bash`` or ``python`` block of the README follows a marker line.
An example's marker states what it reaches, and how the test shrinks it:

    <!-- example: segmentation; reaches: mean_iou >= 0.6; fast: --epochs 12 -> --epochs 6;
         fast reaches: mean_iou >= 0.5 -->

The test applies the ``fast`` replacements and runs the block in a fresh
folder: a ``bash`` block line by line, each ``kcc`` command through this
Python (other tools, such as ``tensorboard``, are skipped); a ``python``
block as a script. It then reads the last ``METRIC=VALUE`` printed. A block
that is not a runnable example says why: ``<!-- not-an-example: ... -->``.

``KCC_README_FULL=1 pytest tests/test_readme_examples.py`` checks the README's
own budgets and claims instead (the figures in docs/benchmarks.md).
"""

import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
BLOCK = re.compile(r"<!--(?P<marker>.*?)-->\s*\n```(?P<language>bash|python)\n(?P<code>.*?)```",
                   re.DOTALL)
ANY_BLOCK = re.compile(r"^```(bash|python)$", re.MULTILINE)
CONDITION = re.compile(r"(\w+)\s*>=\s*([0-9.]+)")


def _readme():
    with open(README, encoding="utf-8") as handle:
        return handle.read()


def parse_examples(text):
    """``[{name, language, code, fields}]`` for every example marker of ``text``."""
    examples = []
    for match in BLOCK.finditer(text):
        marker = " ".join(match["marker"].split())
        if not marker.startswith("example:"):
            continue
        fields = dict(part.strip().split(":", 1) for part in marker.split(";"))
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        examples.append({"name": fields.pop("example"), "language": match["language"],
                         "code": match["code"], "fields": fields})
    return examples


def fast_version(example):
    """The example's code with its ``fast`` replacements applied."""
    code = example["code"]
    for replacement in example["fields"].get("fast", "").split(","):
        if not replacement.strip():
            continue
        old, new = (part.strip() for part in replacement.split("->"))
        assert old in code, f"example {example['name']}: fast replacement {old!r} not in code"
        code = code.replace(old, new)
    return code


def last_metric(output, name):
    """The last ``name=VALUE`` printed, as a float."""
    values = re.findall(rf"\b{name}=([0-9.]+)", output)
    assert values, f"no {name}=VALUE in the output:\n{output[-2000:]}"
    return float(values[-1])


def run_example(code, language, workdir):
    """Runs a README block in ``workdir``; returns its standard output."""
    env = {**os.environ, "KCC_FAST": "1", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "2"}
    if language == "python":
        commands = [[sys.executable, "-c", code]]
    else:
        commands = [[sys.executable, "-m", "keras_cv_course", *shlex.split(line)[1:]]
                    for line in _command_lines(code) if line.split()[0] == "kcc"]
    output = []
    for command in commands:
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
        output.append(done.stdout)
    return "\n".join(output)


def _command_lines(code):
    """Shell lines without comments, continuation lines joined."""
    lines = (line.split("#", 1)[0].strip() for line in code.replace("\\\n", " ").splitlines())
    return [line for line in lines if line]


def test_every_block_is_an_example_or_says_why():
    text = _readme()
    marked = [m for m in BLOCK.finditer(text)
              if " ".join(m["marker"].split()).startswith(("example:", "not-an-example:"))]
    assert len(marked) == len(ANY_BLOCK.findall(text))
    for example in parse_examples(text):
        fields = example["fields"]
        assert CONDITION.fullmatch(fields["reaches"]), example["name"]
        assert CONDITION.fullmatch(fields["fast reaches"]), example["name"]
        assert fields.get("fast"), f"example {example['name']} has no smaller budget"


def test_parse_reads_markers_and_fast_replacements():
    text = ("<!-- example: demo; reaches: accuracy >= 0.9; fast: epochs=10 -> epochs=2;\n"
            "     fast reaches: accuracy >= 0.5 -->\n```python\ntrain(epochs=10)\n```\n")
    [example] = parse_examples(text)
    assert example["name"] == "demo" and example["language"] == "python"
    assert fast_version(example) == "train(epochs=2)\n"
    assert last_metric("accuracy=0.10\naccuracy=0.95", "accuracy") == 0.95
    with pytest.raises(AssertionError):
        last_metric("loss=0.3", "accuracy")


@pytest.mark.parametrize("example", parse_examples(_readme()), ids=lambda e: e["name"])
def test_readme_example_reaches_its_stated_metric(example, tmp_path):
    """At the fast budget; ``KCC_README_FULL=1`` runs the README's own budget and claim."""
    full = os.environ.get("KCC_README_FULL") == "1"
    claim = example["fields"]["reaches" if full else "fast reaches"]
    metric, threshold = CONDITION.fullmatch(claim).groups()
    code = example["code"] if full else fast_version(example)
    output = run_example(code, example["language"], str(tmp_path))
    assert last_metric(output, metric) >= float(threshold), output[-2000:]
