"""The form that starts a new run: the main hyperparameters, then a background trainer.

Every bound and default comes from the tables (:data:`trainer.contract.hparams.HYPERPARAMETERS`,
:data:`trainer.contract.config.RUN_OPTIONS`, the dashboard's :data:`trainer.contract.hparams.FORM_DEFAULTS`); the
form states none of its own.
"""

from __future__ import annotations

import time

import streamlit as st

from app.panels import controls
from app.panels.controls import NotPresenter
from app.serving.launch import LaunchError
from trainer.contract.config import RUN_DEFAULTS, RUN_OPTIONS, TrainConfig
from trainer.contract.hparams import CONTROLS, DEFAULT_BETA, FORM_DEFAULTS, HYPERPARAMETERS, OPTIMIZERS, Hyperparameters, has_beta


def bounds(name: str) -> dict:
    """``min_value``/``max_value`` for a number field: the table's range (hyperparameters, then run options)."""
    if name in HYPERPARAMETERS:
        low, high = CONTROLS[name].bounds(HYPERPARAMETERS[name])
    else:
        low, high = RUN_OPTIONS[name].low, RUN_OPTIONS[name].high
    kind = HYPERPARAMETERS[name].kind if name in HYPERPARAMETERS else RUN_OPTIONS[name].kind
    cast = int if kind == "int" else float
    return {"min_value": cast(low), "max_value": cast(high)}


def start_value(name: str):
    """A run option's first value in the form: the dashboard's own where it has one, else ``panda train``'s."""
    return FORM_DEFAULTS.get(name, RUN_DEFAULTS[name])


def _lr_label(value: float) -> str:
    return f"{value:g}"


def new_run_form(ctx, *, key: str, expanded_title: str = "Start the run") -> None:
    """Render the form; on submit, launch the trainer and select its run."""
    defaults = Hyperparameters()
    disabled = not ctx.can_steer
    with st.form(key=f"{key}-form", border=False):
        # the default name is fixed per form until a launch: a default that changed every second made each
        # full rerun a new widget, which dropped a name being typed (and, racing a click, the click)
        default_name = st.session_state.setdefault(f"{key}-default-name", time.strftime("run-%Y%m%d-%H%M%S"))
        name = st.text_input("Run name", value=default_name, key=f"{key}-name")
        left, right = st.columns(2)
        optimizer = left.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer), key=f"{key}-opt")
        epochs = right.number_input("Epochs", **bounds("epochs"), value=start_value("epochs"), step=10,
                                   key=f"{key}-epochs")
        lr = st.select_slider("Learning rate α", options=controls.LR_CHOICES, format_func=_lr_label,
                              value=controls.nearest(controls.LR_CHOICES, defaults.lr, log=True), key=f"{key}-lr")
        left, right = st.columns(2)
        beta = left.select_slider("β (momentum, ρ, β₁; ignored by sgd)", options=controls.BETA_CHOICES,
                                  value=DEFAULT_BETA, key=f"{key}-beta")
        batch_size = right.select_slider("Batch size", options=controls.BATCH_CHOICES, value=defaults.batch_size,
                                         key=f"{key}-batch")
        left, middle, right = st.columns(3)
        layers = left.number_input("Hidden layers", **bounds("layers"), value=defaults.layers, key=f"{key}-layers")
        units = middle.number_input("Units per layer", **bounds("units"), value=defaults.units, key=f"{key}-units")
        seed = right.number_input("Seed", **bounds("seed"), value=start_value("seed"), key=f"{key}-seed")
        left, right = st.columns(2)
        batch_norm = left.checkbox("Batch norm", value=defaults.batch_norm, key=f"{key}-bn")
        pace = right.number_input("Pace (min. seconds per epoch)", **bounds("pace"), value=start_value("pace"), step=0.5,
                                  key=f"{key}-pace", help="Slows a fast run down so a room can follow it; 0 = full speed")
        submitted = st.form_submit_button(expanded_title, type="primary", disabled=disabled, icon=":material/rocket_launch:")
    if disabled:
        st.caption(":material/lock: Read-only view: starting runs needs the presenter token.")
    if not submitted:
        return
    hparams = Hyperparameters(
        optimizer=optimizer, lr=float(lr), beta=float(beta) if has_beta(optimizer) else None,
        batch_size=int(batch_size), layers=int(layers), units=int(units), batch_norm=bool(batch_norm),
    )
    try:
        launch = ctx.steer.start_run(name.strip(),
                                     TrainConfig(hparams=hparams, epochs=int(epochs), seed=int(seed), pace=float(pace)))
    except NotPresenter as e:
        st.session_state["refused_writes"] = st.session_state.get("refused_writes", 0) + 1
        st.error(str(e), icon=":material/lock:")
        return
    except (LaunchError, OSError) as e:
        st.error(f"Not started: {e}")
        return
    ctx.store.launches[launch.name] = launch
    st.session_state.pop(f"{key}-default-name", None)  # the next run gets a name of its own
    st.session_state["run"] = launch.name
    st.session_state.pop("run_picker", None)
    st.session_state["picker_follows"] = launch.name  # the picker's next run shows it, whatever the browser still says
    st.query_params["run"] = launch.name  # a reload opens the new run, not the one before
    st.rerun()
