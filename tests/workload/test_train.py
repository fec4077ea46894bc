"""`cloud-ai train` as a user runs it: preemption and resume, bad data and bad arguments."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli, small_dataset
from workload.store import ModelStore
from workload.train import EXIT_PREEMPTED


def train_args(data: Path, store: Path, *extra: str) -> list[str]:
    return [
        "train",
        f"--data={data}",
        f"--model-store={store}",
        "--model-name=digits",
        "--backbone=small-cnn",
        "--weights=none",
        "--image-size=16",
        *extra,
    ]


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("cloud-ai train:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.mark.slow
def test_sigterm_saves_exits_75_and_the_rerun_resumes(tmp_path: Path, digits_dir: Path) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=3, per_class=60)
    args = train_args(data, tmp_path / "store", "--epochs=30", "--batch-size=4")
    process = subprocess.Popen(
        [sys.executable, "-m", "workload", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    first_run = []
    for line in process.stdout:
        first_run.append(line)
        if "checkpoint: epoch 2 saved" in line:
            process.send_signal(signal.SIGTERM)
            break
    first_run += process.stdout.readlines()
    assert process.wait(timeout=120) == EXIT_PREEMPTED, "".join(first_run)[-3000:]
    saved = [int(n) for n in re.findall(r"checkpoint: epoch (\d+) saved", "".join(first_run))]
    assert saved and saved[-1] < 30
    assert "run the same command again to resume" in "".join(first_run)
    assert ModelStore(str(tmp_path / "store")).versions("digits") == []

    rerun = run_cli(*args)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-3000:]
    assert f"resuming from epoch {saved[-1] + 1} of 30" in output
    assert f"Epoch {saved[-1] + 1}/30" in output and "Epoch 1/30" not in output
    store = ModelStore(str(tmp_path / "store"))
    assert store.versions("digits") == [1]
    metadata = store.read_metadata("digits", 1)
    assert metadata is not None and metadata["epochs"] == 30
    assert not (tmp_path / "store" / "checkpoints" / "digits" / metadata["run_id"]).exists()


@pytest.mark.slow
def test_corrupt_files_are_skipped_and_counted_in_the_metadata(tmp_path: Path, digits_dir: Path) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=2, per_class=20)
    (data / "0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (data / "1" / "labels.csv").write_text("a,b\n")
    result = run_cli(*train_args(data, tmp_path / "store", "--epochs=1"))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    metadata = json.loads((tmp_path / "store" / "models" / "digits" / "1" / "metadata.json").read_text())
    assert metadata["skipped_files"]["count"] == 2
    assert {e["path"] for e in metadata["skipped_files"]["examples"]} == {"0/broken.jpg", "1/labels.csv"}
    assert metadata["dataset"]["images_per_class"] == {"0": 20, "1": 20}
    assert "broken.jpg" in result.stderr  # logged as it is skipped


def test_a_one_class_dataset_is_a_one_line_error(tmp_path: Path, digits_dir: Path) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=1)
    assert_one_line_error(run_cli(*train_args(data, tmp_path / "store")), str(data), "at least 2")


def test_an_empty_class_is_a_one_line_error(tmp_path: Path, digits_dir: Path) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=2)
    (data / "2").mkdir()
    assert_one_line_error(run_cli(*train_args(data, tmp_path / "store")), "class '2' has no usable images")


def test_imagenet_weights_offline_is_a_clear_error(tmp_path: Path, digits_dir: Path) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=2)
    args = [a for a in train_args(data, tmp_path / "store") if not a.startswith(("--backbone", "--weights"))]
    # An empty Keras cache forces the real download; this machine cannot reach storage.googleapis.com.
    result = run_cli(
        *args, "--image-size=96", "--weights=imagenet", env={"KERAS_HOME": str(tmp_path / "keras")}
    )
    assert_one_line_error(result, "--weights imagenet", "mobilenet_v2", "--weights none")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--backbone=resnet"], ["--backbone 'resnet'", "small-cnn"]),
        (["--epochs=0"], ["--epochs 0", ">= 1"]),
        (["--weights=/no/such/file.h5", "--backbone=mobilenet_v2"], ["/no/such/file.h5", "no such file"]),
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, digits_dir: Path, extra: list[str], fragments: list[str]
):
    data = small_dataset(tmp_path / "data", digits_dir, classes=2)
    assert_one_line_error(run_cli(*train_args(data, tmp_path / "store"), *extra), *fragments)


def test_a_missing_dataset_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_one_line_error(run_cli(*train_args(missing, tmp_path / "store")), str(missing), "not a folder")


def test_sample_data_writes_the_digits(tmp_path: Path) -> None:
    result = run_cli("sample-data", str(tmp_path / "digits"))
    assert result.returncode == 0, result.stderr
    assert "1797 images in 10 classes" in result.stdout
    assert sorted(os.listdir(tmp_path / "digits")) == [str(d) for d in range(10)]
