"""Helpers shared by the serving, function and fuzz tests: a trained version, stores, a server process."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import requests

from tests.emulators import free_port
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
    """`cloud-ai serve` as a real process on a free port; yields its base URL and stops it afterwards."""
    port = free_port()
    command = [*CLI, "serve", f"--model-store={store_url}", f"--model-name={name}", f"--port={port}", *extra]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
        try:
            wait_until(url, "/readyz" if ready else "/healthz", process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(url: str, path: str, process: subprocess.Popen, log, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    log.seek(0)
    raise AssertionError(f"server at {url} never answered 200 on {path}:\n{log.read().decode()[-3000:]}")
