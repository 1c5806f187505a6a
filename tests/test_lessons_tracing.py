"""The tracing lesson measures real TensorFlow: a Python-float α retraces, a tf.Variable does not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainer.reports.tracing import measure

pytestmark = pytest.mark.timeout(300)


def test_a_python_float_retraces_per_value_and_a_variable_never():
    report = measure(units=8, changes=4, repeats=3)
    assert report.traces_python_float == 5  # the first value, then one trace per change
    assert report.traces_variable == 1
    assert report.eager_ms > 0 and report.compiled_ms > 0
    text = "\n".join(report.lines())
    assert "traced 5 times" in text and "traced 1 time(s)" in text


def test_panda_lesson_tracing_prints_the_measured_report(tmp_path):
    result = subprocess.run([sys.executable, "-m", "app", "lesson", "tracing", "--changes", "2"],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "traced 3 times" in result.stdout and "@tf.function" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "app", "lesson", "tracing", "--changes", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "changes must be at least 1" in bad.stderr
