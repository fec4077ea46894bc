"""The exported version: what a server or a function loads, and that every format gives the same answers."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from tests.conftest import TrainedStore
from workload.export import export_model
from workload.model import build_model
from workload.store import ModelStore

IMAGE_SIZE = 24
CLASSES = ["cat", "dog", "fish"]


@pytest.fixture(scope="module")
def keras_model() -> keras.Model:
    """An untrained but deterministic model: agreement between formats does not need accuracy."""
    keras.utils.set_random_seed(3)
    return build_model("small-cnn", len(CLASSES), IMAGE_SIZE, weights="none")


@pytest.fixture(scope="module")
def exported(keras_model: keras.Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store")
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.4, 0.8], "val_accuracy": [0.3, 0.7]}
    version = export_model(keras_model, CLASSES, IMAGE_SIZE, str(store), "pets", {"run_id": "r1"}, history)
    assert version == 1
    return store / "models" / "pets" / "1"


def pixels(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


def test_savedmodel_serving_default_agrees_with_keras(keras_model: keras.Model, exported: Path) -> None:
    images = pixels(5)
    loaded = tf.saved_model.load(str(exported))
    served = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    np.testing.assert_allclose(served, keras_model.predict(images, verbose=0), atol=1e-5)
    assert served.shape == (5, 3) and np.allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_tflite_with_a_resized_batch_agrees_with_keras(keras_model: keras.Model, exported: Path) -> None:
    images = pixels(4, seed=1)
    interpreter = Interpreter(model_path=str(exported / "model.tflite"))
    runner = interpreter.get_signature_runner("serving_default")
    probabilities = runner(images=images)["probabilities"]
    np.testing.assert_allclose(probabilities, keras_model.predict(images, verbose=0), atol=1e-4)


def test_serving_bytes_decodes_and_resizes_like_the_client(keras_model: keras.Model, exported: Path) -> None:
    rng = np.random.default_rng(2)
    originals = [rng.integers(0, 255, (40, 30, 3), dtype=np.uint8) for _ in range(2)]
    encoded = []
    for array, fmt in zip(originals, ("PNG", "JPEG"), strict=True):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=fmt)
        encoded.append(buffer.getvalue())
    loaded = tf.saved_model.load(str(exported))
    served = loaded.signatures["serving_bytes"](image_bytes=tf.constant(encoded))["probabilities"].numpy()
    decoded = np.stack(
        [tf.image.resize(tf.io.decode_image(e, channels=3), [IMAGE_SIZE] * 2).numpy() for e in encoded]
    )
    np.testing.assert_allclose(served, keras_model.predict(decoded, verbose=0), atol=1e-5)


def test_version_folder_has_the_store_layout(exported: Path) -> None:
    names = {p.relative_to(exported).as_posix() for p in exported.rglob("*")}
    assert {"saved_model.pb", "variables", "assets", "model.tflite", "labels.txt", "metadata.json"} <= names
    assert (exported / "labels.txt").read_text().splitlines() == CLASSES
    with Image.open(exported / "training_curves.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 300
    metadata = json.loads((exported / "metadata.json").read_text())
    assert (
        metadata["classes"] == CLASSES and metadata["image_size"] == IMAGE_SIZE and metadata["version"] == 1
    )
    files = {p.relative_to(exported).as_posix(): p.stat().st_size for p in exported.rglob("*") if p.is_file()}
    assert metadata["manifest"] == {k: v for k, v in files.items() if k != "metadata.json"}


def test_a_second_export_is_version_2(keras_model: keras.Model, exported: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(exported.parents[2], store)
    assert export_model(keras_model, CLASSES, IMAGE_SIZE, f"file://{store}", "pets", {}, {}) == 2
    assert ModelStore(f"file://{store}").versions("pets") == [1, 2]
    assert not [p for p in (store / "models" / "pets").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_trained_small_cnn_classifies_the_digits(trained_store: TrainedStore) -> None:
    metadata = json.loads((trained_store.version_dir / "metadata.json").read_text())
    assert metadata["metrics"]["val_accuracy"] >= 0.90
    assert metadata["backbone"] == "small-cnn" and metadata["epochs"] == 10
    assert sum(metadata["dataset"]["images_per_class"].values()) == 1797
    assert metadata["skipped_files"]["count"] == 0
    assert "validation accuracy" in trained_store.train_output and "version 1" in trained_store.train_output

    paths = sorted(trained_store.data_dir.glob("*/*.png"))[::6]
    labels = np.array([trained_store.class_names.index(p.parent.name) for p in paths])
    encoded = tf.constant([p.read_bytes() for p in paths])
    loaded = tf.saved_model.load(str(trained_store.version_dir))
    by_bytes = loaded.signatures["serving_bytes"](image_bytes=encoded)["probabilities"].numpy()
    images = np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths])
    interpreter = Interpreter(model_path=str(trained_store.version_dir / "model.tflite"))
    by_tflite = interpreter.get_signature_runner("serving_default")(images=images)["probabilities"]
    assert (by_bytes.argmax(axis=1) == labels).mean() >= 0.90
    np.testing.assert_allclose(by_tflite, by_bytes, atol=1e-4)
