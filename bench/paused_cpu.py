"""CPU used by a paused trainer, as a percentage of one core (goal: under 2%).

Starts a real ``panda train`` process, pauses it through its run directory, then reads the
process's CPU time (user + system, all threads) over ``--seconds`` of pause.

    python bench/paused_cpu.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import psutil
from bench._trainer import trainer_process, wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, trainer_process(tmp, "paused") as (run, proc):
        command_id = run.send_command("pause", source="bench")
        wait_until(lambda: run.answer_to(command_id), run.path)
        process = psutil.Process(proc.pid)
        before, start = process.cpu_times(), time.monotonic()
        time.sleep(args.seconds)  # the measurement window itself
        after, elapsed = process.cpu_times(), time.monotonic() - start
        used = (after.user - before.user) + (after.system - before.system)
        assert (run.read_status() or {}).get("state") == "paused"
    print(f"paused trainer: {used:.3f} s of CPU in {elapsed:.1f} s = {100 * used / elapsed:.2f}% of one core")


if __name__ == "__main__":
    main()
