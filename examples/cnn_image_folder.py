"""Babysit a Keras CNN on a folder of images, one sub-folder per class — offline.

Generates a small image folder (three classes: horizontal bars, vertical bars, squares; noisy
16x16 grayscale PNGs), then trains Panda's CNN on it, exactly as

    panda train --dataset IMAGES/ --model cnn --tensorboard --run-dir runs --name shapes-cnn

would. While it trains, steer it from another terminal and watch it:

    panda status runs/shapes-cnn
    panda ctl runs/shapes-cnn set-lr 0.001 --wait 10
    panda ctl runs/shapes-cnn pause            # ... and resume, checkpoint, stop
    panda export runs/shapes-cnn --format csv
    tensorboard --logdir runs/shapes-cnn/tensorboard

Usage: python examples/cnn_image_folder.py [--out runs] [--epochs 15] [--pace 0.5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("horizontal", "vertical", "square")


def make_image_folder(folder: Path, per_class: int = 40, size: int = 16, seed: int = 0) -> Path:
    """Noisy grayscale PNGs of three shapes, in ``folder/CLASS/NNN.png``."""
    rng = np.random.default_rng(seed)
    for label in CLASSES:
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.normal(40, 20, (size, size))
            a, b = sorted(rng.integers(2, size - 2, 2))
            b = max(b, a + 4)
            at = rng.integers(2, size - 4)
            if label == "horizontal":
                image[at:at + 3, a:b] = 220
            elif label == "vertical":
                image[a:b, at:at + 3] = 220
            else:
                side = rng.integers(5, 9)
                r, c = rng.integers(1, size - side, 2)
                image[r:r + side, c:c + side] = 220
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="L").save(folder / label / f"{i:03d}.png")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs", help="folder for the images and the run (default: runs)")
    parser.add_argument("--name", default="shapes-cnn")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--pace", type=float, default=0.5, help="seconds per epoch at least, to leave time to steer")
    args = parser.parse_args(argv)

    out = Path(args.out)
    images = make_image_folder(out / "shapes-images")
    print(f"made {sum(1 for _ in images.rglob('*.png'))} images in {images}/")

    from trainer.cli import main as panda

    return panda(["train", "--dataset", f"{images}/", "--model", "cnn", "--tensorboard",
                  "--run-dir", str(out), "--name", args.name, "--epochs", str(args.epochs),
                  "--pace", str(args.pace), "--lr", "3e-3", "--batch-size", "16", "--layers", "1", "--units", "32"])


if __name__ == "__main__":
    sys.exit(main())
