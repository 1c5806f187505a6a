"""Every benchmark the README cites can be started as ``python -m bench.NAME``: a bench module that only
worked from its own folder (``from _trainer import ...``) failed at its first line, and no test ran it."""

from __future__ import annotations

import importlib
import re
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import bench

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def test_the_readme_cites_only_benchmarks_that_exist_and_run_as_programs():
    cited = set(re.findall(r"python -m bench\.([a-z_]+)", (ROOT / "README.md").read_text()))
    assert cited and cited <= set(MODULES), cited - set(MODULES)
    assert all('if __name__ == "__main__":' in (ROOT / "bench" / f"{n}.py").read_text() for n in cited)


@pytest.mark.parametrize("name", MODULES)
def test_a_bench_module_imports_as_a_module_of_the_bench_package(name):
    """Every module imports; one that runs as a program (a ``__main__`` block) has its ``main()``."""
    module = importlib.import_module(f"bench.{name}")
    runnable = 'if __name__ == "__main__":' in (ROOT / "bench" / f"{name}.py").read_text()
    assert not runnable or callable(getattr(module, "main", None)), f"bench.{name} has no main()"


def test_a_benchmark_answers_help_when_run_with_python_m():
    """One subprocess (the others import in this one): ``-m`` from the repository root, as the README says."""
    done = subprocess.run([sys.executable, "-m", "bench.control_latency", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
