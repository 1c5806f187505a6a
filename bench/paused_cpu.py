"""CPU used by a paused trainer, as a percentage of one core (goal: under 2%).

Starts a real ``panda train`` process, pauses it through its run directory, then reads the
process's CPU time (user + system, all threads) over ``--seconds`` of pause.

    python bench/paused_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.rundir import RunDir  # noqa: E402
from trainer.watch import FileWatcher  # noqa: E402


def wait_until(predicate, folder, timeout=120):
    deadline = time.monotonic() + timeout
    with FileWatcher(folder, None) as watcher:
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("trainer did not get there in time")
            watcher.wait(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp) / "paused")
        proc = subprocess.Popen([sys.executable, "-m", "trainer", "train", "--run-dir", tmp, "--name", "paused",
                                 "--epochs", "100000", "--quiet"], stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: run.metrics_path.exists() and len(run.read_metrics()) >= 3, tmp)
            command_id = run.send_command("pause", source="bench")
            wait_until(lambda: run.answer_to(command_id), run.path)
            process = psutil.Process(proc.pid)
            before, start = process.cpu_times(), time.monotonic()
            time.sleep(args.seconds)  # the measurement window itself
            after, elapsed = process.cpu_times(), time.monotonic() - start
            used = (after.user - before.user) + (after.system - before.system)
            assert (run.read_status() or {}).get("state") == "paused"
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"paused trainer: {used:.3f} s of CPU in {elapsed:.1f} s = {100 * used / elapsed:.2f}% of one core")


if __name__ == "__main__":
    main()
