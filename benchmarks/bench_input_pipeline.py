"""Input pipeline cost: training steps/s with the real image pipeline vs. the same model on in-memory tensors.

Both runs use the same model, batch size and image size in one process, so the ratio cancels the
machine's speed; the target is >= 0.90 (the pipeline keeps the model fed). Also training images/s of
each backbone on this CPU (weights none), for sizing expectations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from benchmarks.report import table, write_section
from workload.data import build_pipeline, open_dataset
from workload.model import build_model
from workload.sample_data import write_digits

BATCH = 32
STEPS = 30
WARMUP_STEPS = 5
EPOCHS = 4  # per round of the pipeline comparison: 4 x 45 steps, about 3 s each way
ROUNDS = 3  # alternate the two runs and keep each one's best: other work on the machine only slows


def steps_per_second(model: keras.Model, dataset: tf.data.Dataset, steps: int = STEPS) -> float:
    """Training steps/s after a warm-up (tracing and the first pass through the data)."""
    model.fit(dataset.take(WARMUP_STEPS), epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(dataset.take(steps), epochs=1, verbose=0)
    return steps / (time.perf_counter() - started)


def epochs_steps_per_second(model: keras.Model, epoch: tf.data.Dataset, steps_per_epoch: int) -> float:
    """Training steps/s over whole epochs, the way `cloud-ai train` iterates: a fresh pass (and shuffle)
    of the dataset per epoch, so the pipeline's per-epoch costs count as they do in a real run."""
    model.fit(epoch, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(epoch, epochs=EPOCHS, verbose=0)
    return EPOCHS * steps_per_epoch / (time.perf_counter() - started)


def pipeline_vs_memory(data_dir: Path, image_size: int) -> dict[str, float]:
    folder = open_dataset(str(data_dir))
    pipelines = build_pipeline(folder, image_size, BATCH, validation_split=0.2, seed=1)
    steps_per_epoch = -(-pipelines.train_count // BATCH)
    images, labels = next(iter(pipelines.train))
    memory = tf.data.Dataset.from_tensors((images, labels)).repeat(steps_per_epoch)
    keras.utils.set_random_seed(1)
    model = build_model("small-cnn", len(folder.class_names), image_size, weights="none")
    memory_rate = real_rate = 0.0
    for _ in range(ROUNDS):
        memory_rate = max(memory_rate, epochs_steps_per_second(model, memory, steps_per_epoch))
        real_rate = max(real_rate, epochs_steps_per_second(model, pipelines.train, steps_per_epoch))
    return {
        "pipeline_steps_per_s": real_rate,
        "memory_steps_per_s": memory_rate,
        "ratio": real_rate / memory_rate,
    }


def backbone_images_per_second(backbone: str, image_size: int, steps: int) -> float:
    model = build_model(backbone, 10, image_size, weights="none")
    images = tf.random.uniform([BATCH, image_size, image_size, 3], 0, 255)
    labels = tf.random.uniform([BATCH], 0, 10, dtype=tf.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    return steps_per_second(model, data, steps) * BATCH


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "digits"
        write_digits(data_dir)
        pipeline = pipeline_vs_memory(data_dir, image_size=32)
    throughput = [
        [backbone, size, backbone_images_per_second(backbone, size, steps)]
        for backbone, size, steps in [
            ("small-cnn", 96, 10),
            ("small-cnn", 224, 4),
            ("mobilenet_v2", 96, 6),
            ("mobilenet_v2", 224, 3),
        ]
    ]
    markdown = "\n\n".join(
        [
            "### Input pipeline (small-cnn, digits, 32 px, batch 32)\n\n"
            "Training steps/s with the real image pipeline "
            "(decode, resize, cache, shuffle, augment, prefetch) "
            "against the same model on one in-memory batch repeated as many times, both over whole epochs "
            "as training runs them (best of 3 alternating rounds of 4 epochs each). "
            "Target ratio >= 0.90.",
            table(
                ["pipeline steps/s", "in-memory steps/s", "ratio"],
                [[pipeline["pipeline_steps_per_s"], pipeline["memory_steps_per_s"], pipeline["ratio"]]],
            ),
            "### Training throughput on this CPU (weights none, batch 32)",
            table(["backbone", "image size", "images/s"], throughput),
            "Run: `.venv/bin/python -m benchmarks input_pipeline`.",
        ]
    )
    results = {
        "input_pipeline": pipeline,
        "training_images_per_second": {f"{b}@{s}": v for b, s, v in throughput},
    }
    write_section("input_pipeline", markdown, results)
    print(markdown)


if __name__ == "__main__":
    main()
