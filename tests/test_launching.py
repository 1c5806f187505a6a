"""trainer.contract.launching: the one spawn every trainer launch goes through (page, sweep backends, resume)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import wait_for
from trainer.contract import launching
from trainer.contract.config import TrainConfig

#: A stand-in trainer: writes its pid, then on SIGTERM writes "terminated" and exits 0.
CHILD = textwrap.dedent("""
    import os, signal, sys, threading
    from pathlib import Path
    out = Path(sys.argv[1])
    def on_term(signum, frame):
        (out / "terminated").write_text("yes")
        os._exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print("started", flush=True)
    (out / "child.pid").write_text(str(os.getpid()))
    threading.Event().wait(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_spawn_appends_output_to_the_log_in_a_session_of_its_own_with_stdin_closed(tmp_path):
    log = tmp_path / "logs" / "t.log"
    log.parent.mkdir()
    log.write_text("before\n")
    code = "import os, sys; print(os.getsid(0) == os.getpid(), sys.stdin.read() == '', flush=True); print('err', file=sys.stderr)"
    process = launching.spawn([sys.executable, "-c", code], log)
    assert process.wait(30) == 0
    assert log.read_text().splitlines() == ["before", "True True", "err"]


def test_the_environment_drops_secrets_adds_extras_and_is_unbuffered(tmp_path):
    env = launching.child_env({"EXTRA": "1"}, drop=("SECRET",), base={"SECRET": "s", "KEPT": "k"})
    assert env == {"KEPT": "k", "EXTRA": "1", "PYTHONUNBUFFERED": "1"}
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    launching.spawn([sys.executable, "-c", dump], tmp_path / "env.log", env={**env, "PATH": os.environ["PATH"]}).wait(30)
    seen = json.loads((tmp_path / "env.log").read_text())
    assert "SECRET" not in seen and seen["EXTRA"] == "1" and seen["KEPT"] == "k"


@pytest.mark.parametrize("tied", [True, False])
def test_a_tied_trainer_gets_sigterm_when_its_parent_is_killed_an_untied_one_keeps_going(tmp_path, tied):
    (tmp_path / "child.py").write_text(CHILD)
    parent_code = textwrap.dedent(f"""
        import sys, threading
        from trainer.contract.launching import spawn
        spawn([sys.executable, {str(tmp_path / 'child.py')!r}, {str(tmp_path)!r}], {str(tmp_path / 'c.log')!r},
              tied={tied})
        threading.Event().wait(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    try:
        pid = int(wait_for(lambda: (tmp_path / "child.pid").exists() and (tmp_path / "child.pid").read_text(),
                           tmp_path, 60, "the child's pid"))
        parent.kill()
        parent.wait()
        if tied:
            wait_for(lambda: (tmp_path / "terminated").exists(), tmp_path, 30, "the child's SIGTERM")
        else:
            assert _alive(pid) and not (tmp_path / "terminated").exists()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if (tmp_path / "child.pid").exists() and _alive(int((tmp_path / "child.pid").read_text())):
            os.kill(int((tmp_path / "child.pid").read_text()), signal.SIGKILL)


def test_stop_sends_sigterm_first_and_kills_only_after_the_grace(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    polite = launching.spawn([sys.executable, str(tmp_path / "child.py"), str(tmp_path)], tmp_path / "p.log")
    wait_for(lambda: (tmp_path / "child.pid").exists(), tmp_path, 60, "the child's pid")
    assert launching.stop(polite) == 0 and (tmp_path / "terminated").exists()
    stubborn = launching.spawn([sys.executable, "-c", "import signal, threading; signal.signal(signal.SIGTERM, "
                                "signal.SIG_IGN); print('ready', flush=True); threading.Event().wait(120)"],
                               tmp_path / "s.log")
    wait_for(lambda: "ready" in (tmp_path / "s.log").read_text(), tmp_path, 60, "the stubborn child")
    assert launching.stop(stubborn, grace=0.5) == -signal.SIGKILL
    assert launching.stop(stubborn) == -signal.SIGKILL  # already ended: its status again, nothing sent


def test_every_launcher_goes_through_the_one_spawn():
    """The page and both sweep backends call launching.spawn; no other trainer Popen is left."""
    import app.serving.launch
    import trainer.search.backends
    import trainer.search.runner

    for module in (app.serving.launch, trainer.search.backends, trainer.search.runner):
        source = Path(module.__file__).read_text()
        assert "Popen(" not in source, module.__name__
    assert "spawn(" in Path(app.serving.launch.__file__).read_text()
    assert Path(trainer.search.backends.__file__).read_text().count("spawn(") == 2
    argv = launching.trainer_argv("runs", "r", TrainConfig(epochs=2))
    assert argv[:3] == list(launching.TRAINER_PROGRAM) and argv[3:5] == ["train", "--run-dir"]
    assert launching.resume_argv("runs/r", epochs=5)[3:] == ["train", "--resume", "runs/r", "--epochs", "5", "--quiet"]
