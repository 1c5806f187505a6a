"""The dependency rules: import-linter's contracts (pyproject's [tool.importlinter]) and what
`panda ctl` / `panda status` really import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
#: What a command that only reads or appends to a run directory must not pay for.
HEAVY = ("tensorflow", "keras", "optuna", "streamlit")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's modules, not an installed copy


def test_every_import_linter_contract_is_kept():
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "3 kept" in result.stdout


def test_a_broken_rule_fails_lint_imports(tmp_path):
    """The contracts are live: a trainer module that imports the app breaks the first one."""
    import shutil

    for folder in ("trainer", "app"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "trainer" / "contract" / "jsonsafe.py", "a") as f:
        f.write("\nimport app.serving.auth  # noqa\n")
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode != 0 and "trainer.contract.jsonsafe -> app.serving.auth" in result.stdout


@pytest.mark.parametrize("argv", [["status", "--help"], ["ctl", "--help"], ["status", "{run}"],
                                  ["ctl", "{run}", "pause"]])
def test_panda_ctl_and_status_import_neither_tensorflow_nor_optuna(tmp_path, argv):
    """`panda` (app.serving.panda_cli:main) run for real in a fresh interpreter; sys.modules after it says what it loaded."""
    from trainer.contract.config import TrainConfig
    from trainer.contract.rundir import RunDir

    run = RunDir(tmp_path / "r")
    run.create().write_config(TrainConfig(epochs=1).to_dict())
    code = ("import json, sys\nfrom app.serving.panda_cli import main\ntry:\n    main(json.loads(sys.argv[1]))\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    args = [a.replace("{run}", str(run.path)) for a in argv]
    result = subprocess.run([sys.executable, "-c", code, json.dumps(args)], env=_env(), capture_output=True,
                            text=True, timeout=120)
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "trainer" in loaded and "app" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_panda_sweep_still_registers_its_own_flags_when_it_is_the_command():
    result = subprocess.run([sys.executable, "-m", "app", "sweep", "--help"], env=_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "--param NAME=SPEC" in result.stdout and "--backend" in result.stdout
    listing = subprocess.run([sys.executable, "-m", "app", "--help"], env=_env(), capture_output=True, text=True,
                             timeout=120)
    assert "sweep" in listing.stdout and "caviar mode" in listing.stdout


def test_nothing_patches_sys_path():
    """Modules import each other as packages (the editable install, or ``python -m bench.NAME`` from the root)."""
    patched = [f"{path.relative_to(ROOT)}:{n}" for folder in ("trainer", "app", "bench") for path in (ROOT / folder).rglob("*.py")
               for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if "sys.path.insert" in line or "sys.path.append" in line]
    assert patched == []


@pytest.mark.parametrize("bench", ["advisor", "advisor_alarms", "audience", "callback_overhead"])
def test_the_benchmarks_that_used_to_patch_sys_path_import_as_python_m_bench(bench):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", f"bench.{bench}", "--help"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout and "--help" in result.stdout
