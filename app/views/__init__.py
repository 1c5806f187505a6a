"""Views: the dashboard's pages, each a function Streamlit runs (``app/dashboard.py`` routes to them).

The single-run page (:mod:`~app.views.run_page`), the Sweeps page (:mod:`~app.views.sweep_page`),
the Lessons page (:mod:`~app.views.lessons_page`) and the viewers' projected page
(:mod:`~app.views.projector`). A page reads from :mod:`app.data`, draws with :mod:`app.figures`
and steers through :mod:`app.panels`.
"""

__all__: list[str] = []
