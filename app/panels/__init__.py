"""Panels: the parts of a page that act on a run, and the checks on their way to ``commands.jsonl``.

Checked commands out and answers back (:mod:`~app.panels.controls`), the Steer panel
(:mod:`~app.panels.steer`), Find α and Undo (:mod:`~app.panels.explore`), a fork's candidates
(:mod:`~app.panels.fork`), the banners and their actions (:mod:`~app.panels.notices`), the
new-run form (:mod:`~app.panels.new_run`) and Compare (:mod:`~app.panels.compare`).
"""

__all__: list[str] = []
