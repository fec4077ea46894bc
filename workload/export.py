"""Export a trained classifier as a new model version: SavedModel, TFLite, labels, metadata, curves.

Layout of `<store>/models/<name>/<version>/` (TF Serving compatible):
  saved_model.pb variables/ assets/  signatures `serving_default` (images float32 [batch,H,W,3], 0-255
                                     -> probabilities float32 [batch,classes]) and `serving_bytes`
                                     (image_bytes string [batch] of encoded JPEG/PNG -> probabilities)
  model.tflite                       the float signature, batch dimension resizable
  labels.txt                         one class per line, in output order
  training_curves.png                loss and accuracy per epoch
  metadata.json                      run facts and metrics, plus the manifest the store adds (last)
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import keras
import matplotlib
import tensorflow as tf

from workload.data import decode_image
from workload.store import ModelStore

matplotlib.use("Agg")
import matplotlib.pyplot as plt

log = logging.getLogger(__name__)

LABELS_FILE = "labels.txt"
TFLITE_FILE = "model.tflite"
CURVES_FILE = "training_curves.png"


def export_model(
    model: keras.Model,
    class_names: list[str],
    image_size: int,
    store_url: str,
    model_name: str,
    metadata: dict[str, Any],
    history: dict[str, list[float]],
) -> int:
    """Write every artefact into a scratch folder, publish it as the next version and return its number.

    METADATA is stored as metadata.json (classes and image_size are added here; the store adds the
    version and the manifest). HISTORY is Keras' per-epoch history, drawn as training_curves.png.
    """
    with tempfile.TemporaryDirectory(prefix="cloud-ai-export-") as scratch:
        folder = Path(scratch) / "version"
        write_saved_model(model, image_size, folder)
        write_tflite(folder, folder / TFLITE_FILE)
        (folder / LABELS_FILE).write_text("".join(f"{name}\n" for name in class_names))
        plot_training_curves(history, folder / CURVES_FILE)
        content = {**metadata, "classes": class_names, "image_size": image_size}
        (folder / "metadata.json").write_text(json.dumps(content, indent=2))
        return ModelStore(store_url).publish_version(model_name, folder)


def write_saved_model(model: keras.Model, image_size: int, folder: Path) -> None:
    """A SavedModel with the pixel signature `serving_default` and the encoded-image one `serving_bytes`."""

    def classify(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": tf.cast(model(images, training=False), tf.float32)}

    def classify_bytes(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.map_fn(
            lambda encoded: decode_image(encoded, image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
        )
        return classify(images)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        tf.function(classify),
        input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")],
    )
    archive.add_endpoint(
        "serving_bytes",
        tf.function(classify_bytes),
        input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")],
    )
    archive.write_out(str(folder), verbose=False)
    (folder / "assets").mkdir(exist_ok=True)


def write_tflite(saved_model: Path, target: Path) -> None:
    """Convert the float signature to TFLite (float32 in, 0-255, batch resizable)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serving_default"])
    target.write_bytes(converter.convert())


def plot_training_curves(history: dict[str, list[float]], target: Path) -> None:
    """Loss and accuracy per epoch, training against validation."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + metric, [])
            axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)
