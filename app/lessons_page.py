"""The Lessons page: the tuning week's ideas shown on numbers Panda computes and runs that exist.

Each panel opens with two plain sentences a lecturer can point at, then the evidence. The figures
come from :mod:`app.lessons` (pure, tested without a browser); the tracing panel measures real
TensorFlow on the selected run's model when asked (:mod:`trainer.tracing`).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import lessons
from app.data import inside
from trainer.rundir import RunDir, iter_runs


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


def tracing_panel(runs: list[RunDir]) -> None:
    st.subheader("tf.Variable against a constant, and @tf.function")
    _explain("@tf.function turns the training step into a graph once. A learning rate given as a Python number "
             "is baked into that graph, so each new value builds it again; a tf.Variable is read when the step "
             "runs, so Panda changes α with .assign and never rebuilds.")
    names = ["(a digits-sized model)"] + [str(r.path.name) for r in runs]
    choice = st.selectbox("Model to measure", names, key="lesson-tracing-run")
    if st.button("Measure it now", key="lesson-tracing-go", icon=":material/timer:"):
        from trainer.tracing import measure_run  # TensorFlow loads only when asked

        config = {} if choice == names[0] else next(r for r in runs if r.path.name == choice).read_config()
        with st.spinner("Tracing and timing the step…"):
            st.session_state["lesson-tracing"] = measure_run(config).lines()
    for line in st.session_state.get("lesson-tracing", []):
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


def render_lessons(root: Path) -> None:
    st.title("Lessons")
    runs = [r for r in iter_runs(root) if inside(root, r.path)]  # no symlinks out of the run directory
    left, right = st.columns(2)
    n = left.select_slider("Draws", options=[100, 1000, 10000], value=1000, key="lesson-n")
    seed = int(right.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, key="lesson-seed"))
    scales_panel(n, seed)
    grid_panel(seed)
    tracing_panel(runs)
    panda_caviar_panel(runs, root)
