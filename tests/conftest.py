"""Shared fixtures: real object-store emulators, the sample digits, and one small model trained once.

Everything here is session-scoped: emulators start once, the digits are written once, and the
small-cnn is trained once (about 30 s on 2 cores) and shared by every test that needs a model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import emulators

REPO = Path(__file__).resolve().parents[1]
TRAINED_EPOCHS = 10
TRAINED_IMAGE_SIZE = 32


def small_dataset(root: Path, digits_dir: Path, classes: int = 3, per_class: int = 20) -> Path:
    """The first PER_CLASS sample digits of the first CLASSES classes, copied into ROOT."""
    for name in [str(c) for c in range(classes)]:
        (root / name).mkdir(parents=True)
        for image in sorted((digits_dir / name).iterdir())[:per_class]:
            shutil.copy(image, root / name / image.name)
    return root


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """`python -m workload ARGS` as a user runs it, with captured output."""
    return subprocess.run(
        [sys.executable, "-m", "workload", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Remote datasets are cached in a throwaway folder, never in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("dataset-cache")
    with emulators.environ(CLOUD_AI_CACHE=str(folder)):
        yield folder


@pytest.fixture(scope="session")
def s3_store() -> Iterator[str]:
    """`s3://cloud-ai-test` on a moto server; AWS_ENDPOINT_URL and dummy credentials set for the session."""
    with emulators.start_s3() as url:
        yield url


@pytest.fixture(scope="session")
def gcs_store() -> Iterator[str]:
    """`gs://cloud-ai-test` on fake-gcs-server; STORAGE_EMULATOR_HOST set for the session."""
    with emulators.start_gcs() as url:
        yield url


@pytest.fixture(scope="session")
def azure_store() -> Iterator[str]:
    """`az://cloud-ai-test` on Azurite; AZURE_STORAGE_CONNECTION_STRING set for the session."""
    with emulators.start_azure() as url:
        yield url


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample dataset: 1,797 handwritten digits as 32x32 PNGs in class folders `0` ... `9`."""
    from workload.sample_data import write_digits

    folder = tmp_path_factory.mktemp("digits")
    write_digits(folder)
    return folder


@dataclass(frozen=True)
class TrainedStore:
    """A file:// model store holding one small-cnn trained on the digits by `cloud-ai train`."""

    store_url: str  # file:///.../store
    store_path: Path
    model_name: str  # "digits"
    version: int  # 1
    version_dir: Path  # store_path / "models" / "digits" / "1"
    image_size: int  # 32: serving_default takes float32 [batch, 32, 32, 3], 0-255
    class_names: list[str]  # ["0", ..., "9"], the order of the probabilities
    data_dir: Path  # the digits it was trained on
    train_output: str  # stdout + stderr of the training run


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path) -> TrainedStore:
    """A small-cnn trained once (10 epochs, 32 px, >= 0.9 validation accuracy) and exported as version 1.

    The version folder has saved_model.pb (serving_default, serving_bytes), variables/, assets/,
    model.tflite, labels.txt, metadata.json and training_curves.png. Treat it as read-only: copy the
    store (shutil.copytree(store_path, ...)) before publishing more versions into it.
    """
    store = tmp_path_factory.mktemp("trained-store")
    result = run_cli(
        "train",
        f"--data={digits_dir}",
        f"--model-store=file://{store}",
        "--model-name=digits",
        "--backbone=small-cnn",
        "--weights=none",
        f"--epochs={TRAINED_EPOCHS}",
        f"--image-size={TRAINED_IMAGE_SIZE}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return TrainedStore(
        store_url=f"file://{store}",
        store_path=store,
        model_name="digits",
        version=1,
        version_dir=store / "models" / "digits" / "1",
        image_size=TRAINED_IMAGE_SIZE,
        class_names=[str(d) for d in range(10)],
        data_dir=digits_dir,
        train_output=output,
    )
