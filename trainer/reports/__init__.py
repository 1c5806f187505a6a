"""Reports: what a finished or live run is turned into for other tools and for teaching.

Tables of metrics and interventions (:mod:`~trainer.reports.export`), the learning rate a run
really used, step by step (:mod:`~trainer.reports.schedule`), the same as a Keras schedule for a
plain ``fit`` (:mod:`~trainer.reports.keras_schedule`), TensorBoard event files
(:mod:`~trainer.reports.tensorboard`) and the measured ``tf.Variable`` vs constant lesson
(:mod:`~trainer.reports.tracing`).
"""

__all__: list[str] = []
