"""The default digits run is a good model, not just a running one."""

from __future__ import annotations

from trainer.training.loop import TrainConfig, Trainer


def test_default_digits_run_reaches_97_percent_validation_accuracy(tmp_path):
    trainer = Trainer.create(tmp_path / "default", TrainConfig(epochs=30), verbose=False)
    assert trainer.hp.layers == 2 and trainer.hp.units == 64 and trainer.hp.batch_norm and trainer.hp.optimizer == "adam"
    assert trainer.run() == "finished"
    records = trainer.rundir.read_metrics()
    assert len(records) == 30
    assert records[-1]["val_accuracy"] >= 0.97
    assert records[-1]["loss"] < records[0]["loss"] / 5
