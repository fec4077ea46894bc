"""Image-folder datasets: open one at any store URL, check it, and build the tf.data input pipeline.

A dataset is a folder with one sub-folder per class holding JPEG, PNG, BMP or GIF images. Files that
are not readable images are skipped, logged and counted (they end up in the model's metadata); a
dataset with fewer than two classes, or with a class that has no usable image, is refused before any
training starts.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from workload.errors import UserError
from workload.store import fetch_dataset

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}
SKIPPED_EXAMPLES = 10
AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


@dataclass(frozen=True)
class ImageFolder:
    """A checked image-folder dataset: usable files per class, what was skipped, and a content fingerprint."""

    url: str
    root: Path
    class_names: list[str]
    files: dict[str, list[Path]]
    skipped: list[SkippedFile] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def images_per_class(self) -> dict[str, int]:
        return {name: len(self.files[name]) for name in self.class_names}

    @property
    def size(self) -> int:
        return sum(self.images_per_class.values())


@dataclass(frozen=True)
class Pipelines:
    train: tf.data.Dataset
    validation: tf.data.Dataset
    train_count: int
    validation_count: int


def open_dataset(url: str) -> ImageFolder:
    """Fetch the dataset at URL (cached locally), check every file, and describe what is usable."""
    root = fetch_dataset(url)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: dict[str, list[Path]] = {}
    skipped: list[SkippedFile] = []
    digest = hashlib.sha256()
    for class_dir in class_dirs:
        files[class_dir.name] = []
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            content = path.read_bytes()
            digest.update(f"{path.relative_to(root).as_posix()}\0{len(content)}\0".encode())
            digest.update(hashlib.sha256(content).digest())
            problem = _image_problem(path)
            if problem:
                skipped.append(SkippedFile(path.relative_to(root).as_posix(), problem))
                log.warning("skipping %s: %s", path.relative_to(root), problem)
            else:
                files[class_dir.name].append(path)
    folder = ImageFolder(url, root, [c.name for c in class_dirs], files, skipped, digest.hexdigest()[:16])
    _check_usable(folder)
    log.info(
        "dataset %s: %d images in %d classes, %d files skipped",
        url,
        folder.size,
        len(folder.class_names),
        len(skipped),
    )
    return folder


def _image_problem(path: Path) -> str | None:
    """Why PATH cannot be trained on, or None when it is a readable JPEG/PNG/BMP/GIF."""
    try:
        with Image.open(path) as image:
            if image.format not in IMAGE_FORMATS:
                return f"{image.format} is not one of {', '.join(sorted(IMAGE_FORMATS))}"
            image.load()
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, SyntaxError, ValueError) as error:
        return f"unreadable image ({error})"
    return None


def _check_usable(folder: ImageFolder) -> None:
    empty = [name for name in folder.class_names if not folder.files[name]]
    if empty:
        raise UserError(
            f"dataset {folder.url}: class {empty[0]!r} has no usable images "
            f"(every class folder needs at least one JPEG/PNG/BMP/GIF image)"
        )
    if len(folder.class_names) < 2:
        raise UserError(
            f"dataset {folder.url} has {len(folder.class_names)} class folder(s) {folder.class_names}: "
            "expected at least 2 sub-folders, one per class"
        )


def split(folder: ImageFolder, validation_split: float, seed: int) -> tuple[list[tuple[str, int]], ...]:
    """A deterministic, per-class (stratified) train/validation split of (path, label) pairs."""
    if not 0.0 < validation_split < 1.0:
        raise UserError(
            f"--validation-split {validation_split} is not allowed: expected a number between 0 and 1"
        )
    rng = np.random.default_rng(seed)
    train: list[tuple[str, int]] = []
    validation: list[tuple[str, int]] = []
    for label, name in enumerate(folder.class_names):
        paths = [str(p) for p in folder.files[name]]
        order = rng.permutation(len(paths))
        held_out = round(len(paths) * validation_split) if len(paths) > 1 else 0
        validation += [(paths[i], label) for i in order[:held_out]]
        train += [(paths[i], label) for i in order[held_out:]]
    return train, validation


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded JPEG/PNG/BMP/GIF bytes -> float32 [image_size, image_size, 3] with 0-255 values."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, [image_size, image_size])
    return tf.ensure_shape(image, [image_size, image_size, 3])


def _augment(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Light, label-preserving augmentation of a batch: shifts of up to 1/8 of the size, contrast jitter.

    One projective-transform op shifts the whole batch (each image by its own offset), so augmentation
    costs a few ops per batch instead of per image. No flips: they change the meaning of digits and text.
    """
    count = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    offsets = tf.random.stateless_uniform([count, 2], seed, -size / 8, size / 8)
    ones, zeros = tf.ones([count, 1]), tf.zeros([count, 1])
    # Each row maps output (x, y) to input (x + dx, y + dy): [a0 a1 a2 b0 b1 b2 c0 c1].
    transforms = tf.concat([ones, zeros, offsets[:, :1], zeros, ones, offsets[:, 1:], zeros, zeros], axis=1)
    shifted = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.shape(images)[1:3],
        fill_value=0.0,
        interpolation="NEAREST",
        fill_mode="REFLECT",
    )
    factors = tf.random.stateless_uniform([count, 1, 1, 1], seed + 1, 0.9, 1.1)
    means = tf.reduce_mean(shifted, axis=[1, 2], keepdims=True)
    return tf.clip_by_value((shifted - means) * factors + means, 0.0, 255.0)


def _images(pairs: list[tuple[str, int]], image_size: int) -> tf.data.Dataset:
    paths = tf.constant([p for p, _ in pairs], dtype=tf.string)
    labels = tf.constant([label for _, label in pairs], dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels))
    return dataset.map(
        lambda path, label: (decode_image(tf.io.read_file(path), image_size), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    ).cache()


def build_pipeline(
    folder: ImageFolder, image_size: int, batch_size: int, validation_split: float, seed: int
) -> Pipelines:
    """Decode, resize, cache, shuffle, augment, batch and prefetch; normalization lives in the model."""
    train_pairs, validation_pairs = split(folder, validation_split, seed)
    if not validation_pairs:
        raise UserError(
            f"dataset {folder.url} is too small to hold back a validation set: add images per class"
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.threading.max_intra_op_parallelism = 1
    shuffled = _images(train_pairs, image_size).shuffle(
        len(train_pairs), seed=seed, reshuffle_each_iteration=True
    )
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    train = (
        tf.data.Dataset.zip(shuffled.batch(batch_size), seeds)
        .map(lambda batch, s: (_augment(batch[0], s), batch[1]), num_parallel_calls=AUTOTUNE)
        .prefetch(AUTOTUNE)
        .with_options(options)
    )
    validation = (
        _images(validation_pairs, image_size).batch(batch_size).prefetch(AUTOTUNE).with_options(options)
    )
    return Pipelines(train, validation, len(train_pairs), len(validation_pairs))
