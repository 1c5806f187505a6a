"""The dashboard's sliders and new-run form read the hyperparameter table: no bound of their own."""

from __future__ import annotations

import pytest

from app.panels import controls
from conftest_app import make_run
from test_app_page import open_app  # noqa: F401  (the fixture)
from trainer.contract.config import RUN_OPTIONS
from trainer.contract.hparams import (CONTROLS, FORM_DEFAULTS, HYPERPARAMETERS, NO_BETA, OPTIMIZERS, Hyperparameters, grid,
                             has_beta)
from trainer.contract.commands import CommandError

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_every_grid_lies_inside_the_table_and_reaches_its_ends(name):
    opt, control, values = HYPERPARAMETERS[name], CONTROLS[name], grid(name)
    assert values == sorted(values) and all(opt.check(v) == v for v in values)  # each one a valid value
    if not control.grid:  # a grid drawn from the range starts and ends where the table (or CONTROLS) says
        low, high = control.bounds(opt)
        assert values[0] == pytest.approx(low) and values[-1] == pytest.approx(high)


def test_the_learning_rate_slider_ends_where_the_table_does():
    assert controls.LR_MAX == HYPERPARAMETERS["lr"].high == 10.0  # the table's (0, 10], not a slider's own 1
    assert controls.LR_MIN == CONTROLS["lr"].low and 3e-4 in controls.LR_CHOICES
    assert controls.BATCH_CHOICES == grid("batch_size") and controls.BETA_CHOICES == grid("beta")


def test_no_beta_for_sgd_is_the_tables_rule_everywhere():
    assert [o for o in OPTIMIZERS if not has_beta(o)] == ["sgd"]
    assert set(HYPERPARAMETERS["beta"].optimizers) == {o for o in OPTIMIZERS if has_beta(o)}
    with pytest.raises(CommandError, match=NO_BETA):
        controls.check("set_beta", 0.9, hparams={"optimizer": "sgd"})
    assert controls.check("set_beta", 0.9, hparams={"optimizer": "momentum"}) == 0.9
    assert controls.check("set_beta", 0.9, hparams={"optimizer": "nadam"}) == 0.9  # unknown: the trainer decides


def test_the_start_form_takes_its_bounds_and_defaults_from_the_tables(tmp_path, open_app):
    at = open_app()
    form = "welcome"
    for field, name in (("layers", "layers"), ("units", "units")):
        box, opt = at.number_input(key=f"{form}-{field}"), HYPERPARAMETERS[name]
        assert (box.min, box.max, box.value) == (opt.low, opt.high, getattr(Hyperparameters(), name))
    for field in ("epochs", "seed", "pace"):
        box, opt = at.number_input(key=f"{form}-{field}"), RUN_OPTIONS[field]
        assert (box.min, box.max) == (opt.low, opt.high), field
    assert at.number_input(key=f"{form}-epochs").value == FORM_DEFAULTS["epochs"]
    assert at.number_input(key=f"{form}-pace").value == FORM_DEFAULTS["pace"]
    assert at.number_input(key=f"{form}-layers").max == 64  # the table's, where the form once said 20
    lr = at.select_slider(key=f"{form}-lr")
    assert [float(o) for o in lr.options] == grid("lr")
    assert [float(o) for o in at.select_slider(key=f"{form}-beta").options] == grid("beta")
    assert [int(o) for o in at.select_slider(key=f"{form}-batch").options] == grid("batch_size")


def test_the_steer_panel_offers_the_tables_grid_and_no_beta_for_sgd(tmp_path, open_app):
    make_run(tmp_path, "plain", hparams={"optimizer": "sgd", "lr": 0.01, "beta": None, "batch_size": 64})
    at = open_app()
    lr = at.sidebar.select_slider(key="lr-plain")
    assert float(lr.options[-1]) == HYPERPARAMETERS["lr"].high and float(lr.options[0]) == CONTROLS["lr"].low
    assert at.sidebar.button(key="set_beta").disabled
    assert NO_BETA.capitalize() == at.sidebar.select_slider(key="beta-plain").help
