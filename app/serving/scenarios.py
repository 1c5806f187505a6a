"""``panda demo``'s scenarios: runs on the bundled digits that each need a panda, and what to try.

One table: a scenario's name gives the trainer's settings and the one-line hint the page shows.
Each is paced to last minutes, so a room can watch it go wrong and see the fix take effect;
``tests/test_scenarios.py`` trains each briefly on digits to check it behaves as its hint says.
The page finds a demo run's scenario from its name (``demo-<scenario>-<time>``), so the hint
survives a restart of the dashboard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from trainer.contract.config import TrainConfig
from trainer.contract.hparams import Hyperparameters

#: Seconds per epoch of every scenario: slow enough to follow, and to act between two epochs.
PACE = 1.0
EPOCHS = 300  # five minutes at PACE


@dataclass(frozen=True)
class Scenario:
    hparams: dict
    hint: str
    epochs: int = EPOCHS
    extra: dict = field(default_factory=dict)  # other TrainConfig options

    def config(self, *, epochs: int | None = None, pace: float | None = None) -> TrainConfig:
        return TrainConfig(hparams=Hyperparameters(**self.hparams), epochs=epochs or self.epochs,
                           pace=PACE if pace is None else pace, **self.extra)


SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario(
        {}, "A good first look: the default model learns the digits in a few epochs. Pause, nudge α, resume."),
    "bouncing": Scenario(
        {"optimizer": "adam", "lr": 0.3},
        "α = 0.3 is too high: the loss bounces instead of settling. Try α ×0.1 and watch the curves calm down."),
    "plateau": Scenario(
        {"optimizer": "sgd", "lr": 1e-4},
        "α = 0.0001 is far too small: the loss barely moves. Try α ×2 a few times (or set α = 0.1)."),
    "diverge": Scenario(
        {"optimizer": "adam", "lr": 0.5, "batch_norm": False},
        "α = 0.5 makes the loss explode: the guard rolls back and pauses. Lower α (×0.1 twice), then Resume."),
}
DEFAULT = "healthy"
PREFIX = "demo-"


def run_name(scenario: str, at: float | None = None) -> str:
    """``demo-bouncing-20250101-120000``: the run's name says which scenario it plays."""
    return f"{PREFIX}{scenario}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(at))}"


def scenario_of(run_name: str | None) -> str | None:
    """The scenario a demo run plays, from its name; ``None`` for any other run.

    >>> scenario_of("demo-plateau-20250101-120000"), scenario_of("adam-3e-3")
    ('plateau', None)
    """
    if not run_name or not run_name.startswith(PREFIX):
        return None
    name = run_name[len(PREFIX):].split("-", 1)[0]
    return name if name in SCENARIOS else None


def hint(run_name: str | None) -> str | None:
    scenario = scenario_of(run_name)
    return SCENARIOS[scenario].hint if scenario else None
