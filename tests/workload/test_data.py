"""The image-folder dataset: what is usable, what is skipped, how it is split and decoded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import small_dataset
from workload.data import build_pipeline, decode_image, open_dataset, split
from workload.errors import UserError


def test_sample_digits_are_ten_classes_of_real_pngs(digits_dir: Path) -> None:
    folder = open_dataset(str(digits_dir))
    assert folder.class_names == [str(d) for d in range(10)]
    assert folder.size == 1797
    assert min(folder.images_per_class.values()) >= 170
    with Image.open(folder.files["7"][0]) as image:
        assert (image.format, image.size) == ("PNG", (32, 32))


def test_unreadable_and_non_image_files_are_skipped_and_named(tmp_path: Path, digits_dir: Path) -> None:
    root = small_dataset(tmp_path / "data", digits_dir)
    (root / "0" / "notes.txt").write_text("not an image")
    (root / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    good = (root / "2" / sorted(p.name for p in (root / "2").iterdir())[0]).read_bytes()
    (root / "2" / "truncated.png").write_bytes(good[: len(good) // 2])
    folder = open_dataset(str(root))
    assert sorted(s.path for s in folder.skipped) == ["0/notes.txt", "1/broken.png", "2/truncated.png"]
    assert folder.images_per_class == {"0": 20, "1": 20, "2": 20}


def test_one_class_is_refused_before_training(tmp_path: Path, digits_dir: Path) -> None:
    root = small_dataset(tmp_path / "data", digits_dir, classes=1)
    with pytest.raises(UserError, match="at least 2"):
        open_dataset(str(root))


def test_a_class_without_usable_images_is_refused(tmp_path: Path, digits_dir: Path) -> None:
    root = small_dataset(tmp_path / "data", digits_dir)
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("nothing here")
    with pytest.raises(UserError, match="'empty' has no usable images"):
        open_dataset(str(root))


def test_split_is_deterministic_stratified_and_disjoint(digits_dir: Path) -> None:
    folder = open_dataset(str(digits_dir))
    train, validation = split(folder, 0.2, seed=7)
    assert (train, validation) == split(folder, 0.2, seed=7)
    assert not {p for p, _ in train} & {p for p, _ in validation}
    assert len(train) + len(validation) == 1797
    per_class = np.bincount([label for _, label in validation], minlength=10)
    assert per_class.min() >= 34 and per_class.max() <= 37
    assert split(folder, 0.2, seed=8)[1] != validation


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "GIF"])
def test_every_supported_format_decodes_to_rgb_pixels(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("L", (20, 10), color=200).save(buffer, format=fmt)
    image = decode_image(tf.constant(buffer.getvalue()), 16).numpy()
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    assert abs(float(image.mean()) - 200) < 3


def test_pipeline_yields_batches_of_raw_pixels(tmp_path: Path, digits_dir: Path) -> None:
    folder = open_dataset(str(small_dataset(tmp_path / "data", digits_dir)))
    pipelines = build_pipeline(folder, image_size=24, batch_size=8, validation_split=0.25, seed=1)
    assert (pipelines.train_count, pipelines.validation_count) == (45, 15)
    images, labels = next(iter(pipelines.train))
    assert images.shape == (8, 24, 24, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 255.0
    assert float(tf.reduce_max(images)) > 100  # not normalized: the model normalizes
    assert sum(int(b[1].shape[0]) for b in pipelines.validation) == 15
    assert set(labels.numpy()) <= {0, 1, 2}
