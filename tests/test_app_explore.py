"""The Explore panel under AppTest: Find α and Undo send their commands; the finder's curve and 'apply'."""

from __future__ import annotations

import json

import pytest

from conftest_app import make_run
from test_app_page import open_app  # noqa: F401  (the fixture)
from trainer.training.exploration import LR_FINDER
from trainer.contract.rundir import append_jsonl

pytestmark = pytest.mark.timeout(120)


def is_finder(chart) -> bool:
    axis = json.loads(chart.proto.spec)["layout"].get("xaxis", {})
    return axis.get("type") == "log" and (axis.get("title") or {}).get("text") == "learning rate α"


def _click(at, run, key: str) -> dict:
    at.sidebar.button(key=key).click().run()
    assert not at.exception, at.exception
    return run.read_commands()[-1]


def test_find_lr_plot_apply_and_undo(tmp_path, open_app):
    run = make_run(tmp_path, "demo", hparams={"lr": 0.003})
    at = open_app()
    assert not [c for c in at.get("plotly_chart") if is_finder(c)], "no curve before a finder ran"
    sent = _click(at, run, "find_lr")
    assert sent["cmd"] == "find_lr" and sent["value"] == {"steps": 100, "min": 1e-6, "max": 1.0} and sent["source"] == "dashboard"
    assert _click(at, run, "undo")["cmd"] == "undo"

    points = [{"lr": a, "loss": l, "smoothed": l} for a, l in ((1e-5, 2.3), (1e-3, 2.0), (1e-1, 0.9), (1.0, 9.0))]
    append_jsonl(run.path / LR_FINDER, {"kind": "lr_finder", "points": points, "stopped": "max",
                                        "suggestion": {"lr": 0.01, "steepest": 0.001, "min_lr": 0.1,
                                                       "min_over_10": 0.01}})
    with open(run.path / LR_FINDER, "a") as f:
        f.write('{"kind": "lr_fi')  # a torn line: the whole one before is shown
    at.run()
    chart = next(c for c in at.get("plotly_chart") if is_finder(c))
    spec = json.loads(chart.proto.spec)
    assert spec["data"][0]["x"] == [1e-5, 1e-3, 1e-1, 1.0]
    apply = at.sidebar.button(key="apply_lr")
    assert apply.label == "Apply α = 0.01"
    applied = _click(at, run, "apply_lr")
    assert applied["cmd"] == "set_lr" and applied["value"] == 0.01 and applied["source"] == "dashboard"


def test_finder_labels_never_overlap_and_a_steepest_at_the_first_alpha_is_left_out():
    from app.panels.explore import finder_figure
    from trainer.contract.file_records import FinderRecord

    points = [{"lr": a, "loss": l, "smoothed": l} for a, l in ((1e-6, 2.3), (1e-3, 2.0), (1e-1, 0.9), (1.0, 9.0))]
    both = finder_figure(FinderRecord.from_json({"points": points, "suggestion": {"lr": 0.00266, "steepest": 0.001}}))
    texts = [(a.text, a.xanchor, a.yanchor) for a in both.layout.annotations]
    assert [t[0] for t in texts] == ["suggested 0.0027", "steepest 0.001"]
    assert texts[0][1:] != texts[1][1:]  # two sides, two heights
    first = finder_figure(FinderRecord.from_json({"points": points, "suggestion": {"lr": 0.00266, "steepest": 1e-6}}))
    assert [a.text for a in first.layout.annotations] == ["suggested 0.0027"]
