"""The model store on every backend (local, S3, GCS, Azure through real emulators)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TRAINED_EPOCHS, TRAINED_IMAGE_SIZE, TrainedStore, run_cli
from workload.store import ModelStore, open_url

BACKENDS = ["local", "s3_store", "gcs_store", "azure_store"]


def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "local":
        return f"file://{tmp_path / 'store'}"
    return f"{request.getfixturevalue(backend)}/{request.node.name.replace('[', '-').rstrip(']')}"


def version_folder(tmp_path: Path, payload: bytes = b"weights") -> Path:
    folder = tmp_path / "version"
    (folder / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "variables" / "variables.data-00000-of-00001").write_bytes(payload)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "labels.txt").write_text("a\nb\n")
    (folder / "metadata.json").write_text(json.dumps({"classes": ["a", "b"]}))
    return folder


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_count_up_and_download_whole(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = ModelStore(store_url(backend, request, tmp_path))
    assert store.versions("m") == [] and store.latest_version("m") is None
    assert store.publish_version("m", version_folder(tmp_path)) == 1
    assert store.publish_version("m", version_folder(tmp_path, b"better weights")) == 2
    assert store.versions("m") == [1, 2] and store.latest_version("m") == 2
    copy = store.download_version("m", 2, tmp_path / "copy")
    assert (copy / "variables" / "variables.data-00000-of-00001").read_bytes() == b"better weights"
    assert json.loads((copy / "metadata.json").read_text())["version"] == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_incomplete_versions_are_invisible(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = ModelStore(store_url(backend, request, tmp_path))
    for _ in range(3):
        store.publish_version("m", version_folder(tmp_path))
    fs, root = open_url(store.url)
    fs.rm(f"{root}/models/m/2/metadata.json")  # upload stopped before the last file
    with fs.open(f"{root}/models/m/3/variables/variables.data-00000-of-00001", "wb") as handle:
        handle.write(b"half")  # a file that does not match the manifest
    assert store.versions("m") == [1]
    assert store.latest_version("m") == 1
    assert store.publish_version("m", version_folder(tmp_path)) == 4  # numbers only grow


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["s3_store", "gcs_store", "azure_store"])
def test_training_from_a_cloud_store_matches_a_local_folder(
    backend: str, request: pytest.FixtureRequest, trained_store: TrainedStore
) -> None:
    """Dataset and model store both in the emulated cloud; the local run is the trained_store fixture."""
    cloud = request.getfixturevalue(backend)
    fs, root = open_url(cloud)
    fs.put(str(trained_store.data_dir), f"{root}/datasets/digits", recursive=True)
    result = run_cli(
        "train",
        f"--data={cloud}/datasets/digits",
        f"--model-store={cloud}",
        "--model-name=digits",
        "--backbone=small-cnn",
        "--weights=none",
        f"--epochs={TRAINED_EPOCHS}",
        f"--image-size={TRAINED_IMAGE_SIZE}",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    store = ModelStore(cloud)
    assert store.versions("digits") == [1]
    remote = store.read_metadata("digits", 1)
    local = json.loads((trained_store.version_dir / "metadata.json").read_text())
    assert remote is not None
    assert remote["classes"] == local["classes"]
    assert remote["dataset"]["images_per_class"] == local["dataset"]["images_per_class"]
    assert remote["dataset"]["fingerprint"] == local["dataset"]["fingerprint"]
    assert remote["metrics"]["val_accuracy"] >= 0.90
    assert abs(remote["metrics"]["val_accuracy"] - local["metrics"]["val_accuracy"]) < 0.05
    assert not fs.exists(f"{root}/checkpoints/digits/{remote['run_id']}/state.json")
