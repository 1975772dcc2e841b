"""The GPU check and the input benchmark run end to end at smoke sizes.

Only what they print is checked, never how fast anything ran.
"""

import math
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# One line per pair: "<name>  ours <x> img/s | <twin> <y> img/s | ratio <r> (...".
PAIR_LINE = re.compile(r"^(\w+)\s+ours\s+([\d.]+) img/s \| .+? ([\d.]+) img/s \| ratio ([\d.]+) ",
                       re.MULTILINE)


def run(command, **env):
    """Runs ``command`` with this test's Python first on PATH; returns its stdout."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PATH": path, "PYTHON": sys.executable, **env})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_device_check_smoke_prints_a_ratio_per_pair_and_the_vit_parameter_check():
    # The ViT pair alone: 60-85 s on a shared 2-core CPU. resnet50_v1, the
    # smoke's other pair, would add 40 s or more of XLA compilation.
    output = run(["bash", "scripts/device_check.sh", "--smoke"],
                 KCC_SMOKE_MODELS="vit_base_16")
    pairs = {match[0]: match for match in PAIR_LINE.findall(output)}
    assert set(pairs) == {"vit_base_16"}, output
    for _, ours, theirs, ratio in pairs.values():
        for value in (ours, theirs, ratio):
            assert 0 < float(value) < math.inf, output
    assert ("ViT-B/16 parameters at 224x224, 1000 classes: ours 86,567,656, "
            "plain Keras ViT-B/16 86,567,656, reference 86,567,656: equal") in output, output
    assert "tensorflow not loaded" in output, output


def test_input_benchmark_prints_a_wait_fraction_between_0_and_1(tmp_path):
    output = run([sys.executable, "scripts/benchmark_input.py", "--datasets", "digits",
                  "--epochs", "1", "--rounds", "1", "--json", str(tmp_path / "input.json")])
    fractions = re.findall(r"^digits .* wait fraction ([\d.]+)$", output, re.MULTILINE)
    assert len(fractions) == 1, output
    assert 0.0 <= float(fractions[0]) <= 1.0
    assert (tmp_path / "input.json").exists()
