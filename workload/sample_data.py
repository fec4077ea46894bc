"""`cloud-ai sample-data DIR`: scikit-learn's bundled handwritten digits as a real image-folder dataset.

The 1,797 scans are 8x8 pixels with 17 grey levels. They are written as 32x32 greyscale PNGs
(values stretched to 0-255, bicubic upscaling so strokes look like scanned ink rather than blocks),
one sub-folder per digit: `DIR/0/0_0000.png` ... `DIR/9/9_1796.png`. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from workload.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SIZE = 32
SOURCE_LEVELS = 16  # the digits' pixel values run from 0 to 16


def write_digits(directory: Path, image_size: int = IMAGE_SIZE) -> dict[str, int]:
    """Write every digit as DIRECTORY/<digit>/<digit>_<index>.png; return images per class."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts: dict[str, int] = {}
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        name = str(label)
        grey = np.clip(pixels * (255.0 / SOURCE_LEVELS), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L").resize((image_size, image_size), Image.Resampling.BICUBIC)
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{name}_{index:04d}.png")
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if directory.exists() and not directory.is_dir():
        raise UserError(f"sample-data DIR {str(directory)!r} is a file: expected a folder (new or existing)")
    counts = write_digits(directory)
    print(
        f"wrote {sum(counts.values())} images in {len(counts)} classes to {directory} "
        f"({IMAGE_SIZE}x{IMAGE_SIZE} PNG)"
    )
    return 0
