"""The Sweeps page's table and score chart read at a glance: one header style, whole columns, a key to the colours."""

from __future__ import annotations

from app.figures import sweep_charts
from app.data import sweeps as sweep_data
from test_search_page import make_sweep


def test_the_trials_table_has_one_header_style_and_the_score_chart_a_key_to_its_colours(tmp_path):
    from app.views.sweep_page import table_columns

    view = sweep_data.load_sweep(make_sweep(tmp_path, n=6).path)
    config = table_columns(sweep_data.trials_frame(view))
    headers = [c if isinstance(c, str) else c["label"] for c in config.values()]
    assert set(config) >= set(sweep_data.trials_frame(view).columns)  # every column named, in one style
    assert all("_" not in h and h == h.lower() for h in headers), headers
    assert config["optimizer"]["width"] == "medium"  # "momentum" whole, never "momen…"
    fig = sweep_charts.score_vs_param_figure(view, "lr")
    states = [t for t in fig.data if t.name in sweep_charts.STATE_COLORS]
    assert states and all(t.showlegend for t in states) and fig.layout.legend.title.text == "trial state"
