"""Helpers shared by the serving, function and fuzz tests: a trained version, stores, a server process."""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tests.emulators import answers, free_port, server_process
from workload import images
from workload.store import ModelStore

MODEL_NAME = "digits"
IMAGE_SIZE = 32
REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "workload"]


def exported_version(store_url: str, name: str, dest: Path) -> Path:
    """A local copy of the store's latest complete version, ready to publish into stores of the tests' own."""
    store = ModelStore(store_url)
    version = store.latest_version(name)
    assert version is not None, f"{store_url} holds no complete version of {name}"
    return store.download_version(name, version, dest)  # publish_version rewrites version and manifest


def new_store(root: Path, version_folder: Path, name: str = MODEL_NAME) -> str:
    """A fresh file:// store holding VERSION_FOLDER as version 1."""
    root.mkdir(parents=True, exist_ok=True)
    url = f"file://{root}"
    assert ModelStore(url).publish_version(name, version_folder) == 1
    return url


def digit_samples(count: int, offset: int = 1700) -> tuple[list[bytes], list[str]]:
    """PNG bytes and labels of sklearn digits drawn like the sample dataset (32x32 grey, 0-255)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    encoded, labels = [], []
    for index in range(offset, offset + count):
        grey = np.clip(digits.images[index] * (255.0 / 16), 0, 255).astype(np.uint8)
        image = Image.fromarray(grey, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        encoded.append(images.encode_png(np.asarray(image)))
        labels.append(str(digits.target[index]))
    return encoded, labels


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


def pixels(data: bytes) -> list:
    """The float pixel array the server decodes from DATA, as nested lists (the `instances` float form)."""
    return images.decode_image(data, IMAGE_SIZE, IMAGE_SIZE).tolist()


@contextlib.contextmanager
def serve_process(store_url: str, *extra: str, name: str = MODEL_NAME, ready: bool = True) -> Iterator[str]:
    """`cloud-ai serve` as a real process on a free port; yields its base URL and stops it afterwards.

    READY waits for /readyz (a model loaded); otherwise /healthz is enough.
    """
    port = free_port()
    command = [*CLI, "serve", f"--model-store={store_url}", f"--model-name={name}", f"--port={port}", *extra]
    url = f"http://127.0.0.1:{port}"
    probe = answers(f"{url}/readyz" if ready else f"{url}/healthz", require_200=True)
    with server_process(command, probe, "cloud-ai serve", startup_seconds=120):
        yield url
