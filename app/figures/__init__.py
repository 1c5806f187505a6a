"""Figures: pure functions from data to Plotly figures, and their caches.

A run's charts (:mod:`~app.figures.run_charts`) with the journal's markers
(:mod:`~app.figures.interventions`), the loss charts' y-range (:mod:`~app.figures.loss_range`) and
decimation of long curves (:mod:`~app.figures.decimate`); a sweep's charts
(:mod:`~app.figures.sweep_charts`); the Lessons page's computed figures
(:mod:`~app.figures.lessons`); figures built once per change and shared by every viewer
(:mod:`~app.figures.cache`). No Streamlit here.
"""

__all__: list[str] = []
