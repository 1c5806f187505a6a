"""The Lessons page: the tuning week's ideas shown on numbers Panda computes and runs that exist.

Each panel opens with two plain sentences a lecturer can point at, then the evidence. The figures
come from :mod:`app.figures.lessons` (pure, tested without a browser); the tracing panel measures real
TensorFlow on the selected run's model when the presenter asks (:mod:`trainer.reports.tracing`): a
viewer's click cannot make the server run TensorFlow, and one measurement per model serves
everyone for :data:`MEASURE_EVERY` seconds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import streamlit as st

from app.figures import lessons
from app.panels.controls import NotPresenter, PageWriter
from app.data import inside
from app.serving.launch import LaunchError
from app.serving.shared import shared
from trainer.contract import commands as cmds
from trainer.contract.file_records import RunConfig
from trainer.contract.rundir import RunDir, RunDirError, iter_runs

#: Seconds between refreshes of the live panels.
LIVE_EVERY = 2.0
#: Seconds a model's tracing measurement is reused: a click costs TensorFlow at most once per model in that time.
MEASURE_EVERY = 5 * 60


def _explain(text: str) -> None:
    st.markdown(f"<div style='font-size:1.15rem'>{text}</div>", unsafe_allow_html=True)


def scales_panel(n: int, seed: int) -> None:
    st.subheader("Sampling on the right scale")
    _explain("A learning rate between 0.0001 and 1 drawn uniformly lands above 0.1 nine times out of ten. "
             "Drawing its exponent uniformly gives every decade the same share — the same holds for 1 − β.")
    alpha, beta = lessons.scale_shares(n, seed)
    left, right = st.columns(2)
    left.plotly_chart(lessons.shares_figure(alpha, f"{n} draws of α in [1e-4, 1]: share per decade"),
                      key="lesson-alpha")
    right.plotly_chart(lessons.shares_figure(beta, f"{n} draws of β in [0.9, 0.999]"), key="lesson-beta")
    st.caption("β = 0.9 averages over about " f"{lessons.averaging_window(0.9):.0f} steps, β = 0.99 over "
               f"{lessons.averaging_window(0.99):.0f}, β = 0.999 over {lessons.averaging_window(0.999):.0f}: "
               "the closer β is to 1, the more a small change of β matters.")


def grid_panel(seed: int) -> None:
    st.subheader("Random search, not a grid")
    _explain("When only one of two parameters matters, a 3 × 3 grid spends nine trials on three values of it. "
             "Nine random trials try nine different values.")
    g = lessons.grid_vs_random(9, seed)
    st.plotly_chart(lessons.grid_figure(g), key="lesson-grid")
    st.metric("values of α tried", f"grid {g.distinct_grid} · random {g.distinct_random}")


def batch_norm_panel(run: RunDir | None, internals: lessons.Internals, steer: PageWriter | None) -> None:
    st.subheader("Batch normalization")
    _explain("Batch norm rescales each layer's z over the mini-batch to mean 0 and variance 1, then lets the net "
             "pick its own scale (γ) and shift (β). At test time there is no batch, so it uses running averages "
             "of the batch statistics: watch them converge, and what accuracy each kind gives.")
    if run is None or not internals.epochs:
        st.info("No recorded internals for this run yet: runs of `panda train` record them once per epoch "
                "(`internals.jsonl`); older runs and runs with `--no-internals` have none.", icon=":material/info:")
        return
    layers = internals.bn_layers()
    if not layers:
        st.info("This model has no batch normalization layers (it was trained with `--no-batch-norm`).",
                icon=":material/info:")
    else:
        layer = st.selectbox("Layer", layers, key="lesson-bn-layer")
        st.plotly_chart(lessons.bn_figure(internals, layer), key="lesson-bn")
        st.plotly_chart(lessons.bn_modes_figure(internals), key="lesson-bn-modes")
    twin_panel(run, steer)


def twin_panel(run: RunDir, steer: PageWriter | None) -> None:
    """Start the same run with batch norm off, and overlay the two."""
    twin = lessons.twin_path(run.path)
    if RunDir(twin).exists():
        st.plotly_chart(lessons.twin_figure(run.path, twin), key="lesson-twin")
        return
    record = run.config_snapshot().record  # checked: a run's config.json may hold anything
    config = RunConfig.from_json(record)
    if config is None or config.trainer != cmds.PANDA_TRAIN or not config.hparams.get("batch_norm"):
        return
    if st.button("Start its twin without batch norm", key="lesson-twin-go", icon=":material/compare:",
                 disabled=steer is None or not steer.can_steer,
                 help="The same seed, data and hyperparameters, batch norm off; both curves are overlaid here."):
        try:
            steer.start_run(twin.name, lessons.twin_config(record))
        except NotPresenter as e:
            st.error(str(e), icon=":material/lock:")
        except (LaunchError, ValueError, OSError) as e:
            st.error(f"Not started: {e}")
        else:
            st.success(f"Started {twin.name}: its curves appear here as it trains.", icon=":material/rocket_launch:")


def softmax_panel(run: RunDir | None, internals: lessons.Internals) -> None:
    st.subheader("Softmax classification")
    _explain("The last layer gives one score per class; softmax turns the scores into probabilities that sum to "
             "1, and the loss rewards a high probability on the true class. Watch the probe examples' bars sharpen.")
    pictures = lessons.softmax_figure(internals)
    if run is None or pictures is None:
        st.info("No softmax probes recorded for this run yet.", icon=":material/info:")
        return
    st.plotly_chart(pictures, key="lesson-softmax")
    confusion = lessons.confusion_figure(internals)
    if confusion is not None:
        st.plotly_chart(confusion, key="lesson-confusion")


class Measurements:
    """The tracing panel's results for the whole server, one per model: measured on the presenter's
    click (one at a time, at most once per :data:`MEASURE_EVERY` per model), shown to every session.

    A measurement costs seconds of CPU and hundreds of MB of TensorFlow; a viewer's click (or a
    forged one) never starts one.
    """

    def __init__(self):
        self._results: dict[str, tuple[float, list[str]]] = {}
        self._lock = threading.Lock()
        self.measured = 0  # how many measurements ran (tests)

    def get(self, model: str) -> list[str]:
        found = self._results.get(model)
        return found[1] if found else []

    def measure(self, model: str, config: dict) -> list[str]:
        with self._lock:  # one at a time for the whole server; a second click gets the first's result
            found = self._results.get(model)
            if found and time.monotonic() - found[0] < MEASURE_EVERY:
                return found[1]
            from trainer.reports.tracing import measure_run  # TensorFlow loads only when asked

            lines = measure_run(config).lines()
            self._results[model] = (time.monotonic(), lines)
            self.measured += 1
            return lines


def measurements() -> Measurements:
    return shared("tracing measurements", None, Measurements)


def times(n) -> str:
    """``n`` with "time" or "times", as a person would write it.

    >>> times(1), times(0), times(3)
    ('1 time', '0 times', '3 times')
    """
    return f"{n} time" + ("" if n == 1 else "s")


def tracing_panel(runs: list[RunDir], internals: lessons.Internals, steer: PageWriter | None = None) -> None:
    st.subheader("tf.Variable against a constant, and @tf.function")
    _explain("@tf.function turns the training step into a graph once. A learning rate given as a Python number "
             "is baked into that graph, so each new value builds it again; a tf.Variable is read when the step "
             "runs, so Panda changes α with .assign and never rebuilds.")
    tracing = internals.latest.tracing if internals.latest else {}
    if isinstance(tracing.get("traces"), int):
        st.metric("This run's training step", f"traced {times(tracing['traces'])}; "
                  f"hyperparameters changed {times(tracing.get('hparam_changes', 0))}")
    names = ["(a digits-sized model)"] + [str(r.path.name) for r in runs]
    choice = st.selectbox("Model to measure", names, key="lesson-tracing-run")
    presenter = steer is not None and steer.can_steer
    if st.button("Measure it now", key="lesson-tracing-go", icon=":material/timer:", disabled=not presenter,
                 help=None if presenter else "The presenter measures; the result shows here for everyone."):
        if not presenter:  # a forged click from a viewer's browser (the button is disabled there) stops here
            st.error("Read-only view: the presenter measures, and the result shows here.", icon=":material/lock:")
        else:
            try:
                config = {} if choice == names[0] else next(r for r in runs if r.path.name == choice).read_config()
            except RunDirError as e:  # the run's config.json is unusable: say so, measure nothing
                st.error(f"Not measured: {e}", icon=":material/error:")
            else:
                with st.spinner("Tracing and timing the step…"):
                    measurements().measure(choice, config)
    for line in measurements().get(choice):
        st.markdown(f"- {line}")


def panda_caviar_panel(runs: list[RunDir], root: Path) -> None:
    st.subheader("Panda or caviar")
    _explain("With the compute for one model, you babysit it and nudge it (panda). With compute to spare, you "
             "train many and keep the best (caviar). Here both are measured in the epochs they cost.")
    singles = [r for r in runs if r.path.parent == root]
    sweeps = sorted({r.path.parent for r in runs if r.path.parent != root})
    if not singles or not sweeps:
        st.info("This panel needs one ordinary run and one sweep in the run directory "
                "(`panda train` and `panda sweep`).", icon=":material/info:")
        return
    left, right = st.columns(2)
    panda = left.selectbox("Babysat run", [r.path.name for r in singles], key="lesson-panda")
    sweep = right.selectbox("Sweep", [s.name for s in sweeps], key="lesson-caviar")
    trials = [r.path for r in runs if r.path.parent.name == sweep]
    st.plotly_chart(lessons.budget_figure(lessons.panda_vs_caviar(root / panda, trials)), key="lesson-budget")


def render_lessons(root: Path, steer: PageWriter | None = None) -> None:
    """The page, in the order of the course week; ``?run=NAME`` picks the run the live panels show."""
    st.title("Lessons")
    runs = [r for r in iter_runs(root) if inside(root, r.path)]  # no symlinks out of the run directory
    names = [str(r.path.relative_to(root)) for r in runs]
    wanted = st.query_params.get("run")
    left, middle, right = st.columns([2, 1, 1])
    name = left.selectbox("Run shown live below", names, index=names.index(wanted) if wanted in names else
                          (len(names) - 1 if names else None), key="lesson-run")
    n = middle.select_slider("Draws", options=[100, 1000, 10000], value=1000, key="lesson-n")
    seed = int(right.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="lesson-seed"))
    run = runs[names.index(name)] if name in names else None
    if name is not None and st.query_params.get("run") != name:
        st.query_params["run"] = name  # the address says which run: a reload, a link and a follower show it
    scales_panel(n, seed)
    grid_panel(seed)
    panda_caviar_panel(runs, root)
    live_panels(run, runs, steer)


@st.cache_data(show_spinner=False, max_entries=64)
def _internals(path: str, size: int, mtime_ns: int) -> lessons.Internals:
    """A run's internals, read once per change of the file for every viewer (the key is its size and time)."""
    return lessons.read_internals(path)


def internals_of(run: RunDir | None) -> lessons.Internals:
    try:
        st_ = run.internals_path.stat() if run is not None else None
    except OSError:
        st_ = None
    return _internals(str(run.path), st_.st_size, st_.st_mtime_ns) if st_ else lessons.Internals(None, [])


@st.fragment(run_every=LIVE_EVERY)
def live_panels(run: RunDir | None, runs: list[RunDir], steer: PageWriter | None) -> None:
    """The panels that follow the run as it trains: batch norm, softmax and the step's tracing count."""
    with st.container(key="lesson-live"):
        internals = internals_of(run)
        if internals.latest is not None:
            st.caption(f"Measured on the probe at epoch {internals.latest.epoch} of {run.path.name}; "
                       "the panels follow the run.")
        batch_norm_panel(run, internals, steer)
        softmax_panel(run, internals)
        tracing_panel(runs, internals, steer)
