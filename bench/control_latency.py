"""Latency of a command, from its line landing in commands.jsonl to the trainer's applied event.

Starts a real ``panda train`` process on digits (no pace, so it trains flat out), then appends
``--commands`` learning-rate changes at irregular moments, each after the previous one was
answered. For each: milliseconds (command ``time`` -> event ``time``) and training steps
(``received_step`` -> ``step``; 1 means "applied before the next step"). Prints p50 and p95.

    python bench/control_latency.py [--commands 200]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

from bench._trainer import trainer_process

from trainer.contract.rundir import JsonlTail
from trainer.contract.watch import FileWatcher


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, trainer_process(tmp, "latency") as (run, _):
        events = JsonlTail(run.events_path)
        ms, steps = [], []
        rng = random.Random(0)
        with FileWatcher(run.path, [run.events_path.name]) as watcher:
            for _ in range(args.commands):
                time.sleep(rng.uniform(0.0, 0.05))  # land at an arbitrary point of a step
                command_id = run.send_command("set_lr", 10 ** rng.uniform(-4, -2), source="bench")
                answer = None
                while answer is None:
                    answer = next((e for e in events.read_new() if e.get("command_id") == command_id), None)
                    if answer is None:
                        watcher.wait(1.0)
                assert answer["event"] == "applied", answer
                sent = next(c for c in reversed(run.read_commands()) if c["id"] == command_id)
                ms.append((answer["time"] - sent["time"]) * 1000)
                steps.append(answer["step"] - answer["received_step"])
    print(f"{len(ms)} set_lr commands to a trainer training flat out on digits (batch 64)")
    print(f"latency ms:    p50 {percentile(ms, 50):.1f}  p95 {percentile(ms, 95):.1f}  max {max(ms):.1f}")
    print(f"latency steps: p50 {percentile(steps, 50)}  p95 {percentile(steps, 95)}  max {max(steps)}")


if __name__ == "__main__":
    main()
