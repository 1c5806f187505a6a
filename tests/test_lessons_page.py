"""The Lessons page: its numbers are Panda's own samplers and real runs, and every panel renders."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.figures import lessons
from tests.conftest_app import make_run

pytestmark = pytest.mark.timeout(120)


def test_log_scale_gives_each_decade_a_quarter_and_uniform_does_not():
    alpha, beta = lessons.scale_shares(4000, seed=1)
    assert len(alpha.bins) == 4
    assert all(abs(share - 0.25) < 0.04 for share in alpha.right_scale)
    assert alpha.uniform[-1] > 0.85  # uniform draws pile into [0.1, 1]
    assert abs(beta.right_scale[0] - 0.5) < 0.04 and beta.uniform[0] > 0.85


def test_grid_tries_three_values_of_the_parameter_that_matters_random_tries_nine():
    g = lessons.grid_vs_random(9, seed=3)
    assert (g.distinct_grid, g.distinct_random) == (3, 9)
    assert len(g.grid) == len(g.random) == 9


def test_panda_vs_caviar_counts_the_epochs_each_spent(tmp_path):
    make_run(tmp_path, "babysat", epochs_done=12)
    trials = [make_run(tmp_path / "sweep", f"trial-{i}", epochs_done=4).path for i in range(3)]
    panda, caviar = lessons.panda_vs_caviar(tmp_path / "babysat", trials)
    assert panda.epochs[-1] == 12 and caviar.epochs[-1] == 12
    assert panda.best == sorted(panda.best) and caviar.best == sorted(caviar.best)  # best so far never drops


def _page(root: str, can_steer: bool = False) -> None:
    from pathlib import Path

    from app.panels.controls import PageWriter
    from app.views.lessons_page import render_lessons

    render_lessons(Path(root), PageWriter(Path(root), can_steer))


def test_the_page_renders_every_panel_from_a_real_run_directory(tmp_path):
    make_run(tmp_path, "babysat", epochs_done=6)
    for i in range(2):
        make_run(tmp_path / "sweep", f"trial-{i}", epochs_done=3)
    at = AppTest.from_function(_page, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception
    headers = [h.value for h in at.subheader]
    assert headers == ["Sampling on the right scale", "Random search, not a grid", "Panda or caviar",
                       "Batch normalization", "Softmax classification",
                       "tf.Variable against a constant, and @tf.function"]
    infos = " ".join(i.value for i in at.info)
    assert "No recorded internals for this run yet" in infos  # synthetic runs have no internals.jsonl
    assert "No softmax probes recorded" in infos
    assert "grid 3 · random 9" in [m.value for m in at.metric]
    assert at.selectbox(key="lesson-panda").options == ["babysat"]
    assert at.selectbox(key="lesson-caviar").options == ["sweep"]
    assert len(at.get("plotly_chart")) == 4  # α, β, grid, panda vs caviar


def test_an_empty_run_directory_shows_the_panels_empty_state(tmp_path):
    at = AppTest.from_function(_page, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception
    assert any("needs one ordinary run and one sweep" in i.value for i in at.info)


def test_the_tracing_button_measures_real_tensorflow_for_the_presenter_and_shows_everyone(tmp_path):
    make_run(tmp_path, "babysat", epochs_done=2, hparams={"units": 8})
    viewer = AppTest.from_function(_page, args=(str(tmp_path),), default_timeout=240).run()
    assert viewer.button(key="lesson-tracing-go").disabled  # display-only for a viewer
    at = AppTest.from_function(_page, args=(str(tmp_path), True), default_timeout=240).run()
    at.selectbox(key="lesson-tracing-run").select("babysat").run()
    assert not at.exception
    at.button(key="lesson-tracing-go").click().run()
    text = " ".join(m.value for m in at.markdown)
    assert "traced 8 times" in text and "traced 1 time(s)" in text
    at.button(key="lesson-tracing-go").click().run()  # again within MEASURE_EVERY: the same result, no new work
    viewer.selectbox(key="lesson-tracing-run").select("babysat").run()  # every session sees the one measurement
    assert "traced 8 times" in " ".join(m.value for m in viewer.markdown)
    from app.views.lessons_page import measurements

    assert measurements().measured == 1


#: Average glyph width of Plotly's default font, as a share of its size (Open Sans ≈ 0.55).
GLYPH = 0.55


def _lines(text: str) -> list[str]:
    return text.split("<br>")


def test_the_beta_share_chart_keeps_its_labels_apart_and_off_the_legend():
    _, beta = lessons.scale_shares(1000)
    fig = lessons.shares_figure(beta, "1000 draws of β in [0.9, 0.999]").to_plotly_json()["layout"]
    font = fig["font"]["size"]
    assert fig["xaxis"]["tickangle"] == 0 and fig["xaxis"]["automargin"] is True
    legend = fig["legend"]
    assert legend["yanchor"] == "bottom" and legend["y"] >= 1.0  # above the plot, the labels are below it
    assert fig["margin"]["t"] >= 2 * font * 1.4 + font  # the title's line and the legend's both fit above
    # each category has half of a 640-px plot (a laptop's column): every line of its label fits in it
    assert all(len(line) * GLYPH * font <= 640 / len(beta.bins) - 20 for label in beta.bins for line in _lines(label))
    assert all(len(_lines(label)) == 2 for label in beta.bins)


def test_every_batch_norm_panel_title_fits_its_third_of_the_chart():
    fig = lessons.bn_figure(lessons.Internals(None, []), "batch_normalization").to_plotly_json()["layout"]
    titles = [a["text"] for a in fig["annotations"]]
    assert titles == list(lessons.BN_TITLES)
    font = fig["font"]["size"]
    third = (700 - fig["margin"]["l"] - fig["margin"]["r"]) / 3  # a 700-px chart, three panels and their gaps
    assert all(len(line) * GLYPH * font <= third for title in titles for line in _lines(title)), titles
    most = max(len(_lines(t)) for t in titles)
    assert fig["margin"]["t"] >= most * font * 1.4 + 20  # every line of the tallest title is above the panels
