"""Add Panda to an existing Keras ``model.fit`` — one extra line, offline.

The model and data are ordinary Keras: a small CNN on scikit-learn's bundled 8x8 digits. The only
Panda line is ``callbacks=[PandaCallback(...)]``. While ``fit`` runs, the run directory is a Panda
run like any other:

    panda status runs/keras-digits
    panda ctl runs/keras-digits scale-lr 0.5 --wait 10
    panda ctl runs/keras-digits pause        # fit waits at the next batch; then: resume
    panda ctl runs/keras-digits stop         # checkpoint, then fit returns
    panda export runs/keras-digits --format parquet
    tensorboard --logdir runs/keras-digits/tensorboard

Run it again with ``--resume`` to continue the same run from its last checkpoint.

Usage: python examples/keras_fit_callback.py [--run runs/keras-digits] [--epochs 20] [--resume]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/keras-digits", help="the run directory")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--resume", action="store_true", help="continue the run at --run")
    args = parser.parse_args(argv)

    import keras
    from sklearn.datasets import load_digits

    from trainer import PandaCallback

    # --- an ordinary Keras program -------------------------------------------------------
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (1797, 8, 8, 1)
    y = digits.target
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    history = model.fit(
        x, y, batch_size=64, epochs=args.epochs, validation_split=0.2, verbose=2,
        callbacks=[PandaCallback(args.run, resume=args.resume, tensorboard=True)],  # <- the Panda line
    )
    # -------------------------------------------------------------------------------------
    print(f"final val_accuracy {history.history['val_accuracy'][-1]:.3f}; the run is in {args.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
