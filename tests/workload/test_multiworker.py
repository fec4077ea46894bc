"""Replicated training: two worker processes on localhost (MultiWorkerMirroredStrategy), and one process
with two logical CPUs (MirroredStrategy), both through the same replicated loop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import REPO, small_dataset
from workload.data import open_dataset, split
from workload.store import ModelStore
from workload.train import EXIT_PREEMPTED, STATE_FILE

IMAGE_SIZE = 32
EPOCHS = 3

# One process, the CPU split into two logical devices: MirroredStrategy as on a machine with two GPUs.
TWO_LOGICAL_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
from workload.train import TrainSettings, train
settings = TrainSettings(
    data=sys.argv[1], model_store=sys.argv[2], model_name="digits", backbone="small-cnn", weights="none",
    image_size=32, epochs=int(sys.argv[3]), batch_size=16, learning_rate=2e-3,
)
sys.exit(train(settings, strategy))
"""


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def start_workers(args: list[str], count: int) -> list[subprocess.Popen]:
    """COUNT `python -m workload ARGS` processes, worker i of a TF_CONFIG cluster on 127.0.0.1."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    processes = []
    for index in range(count):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "workload", *args],
                cwd=REPO,
                env={**os.environ, "TF_CONFIG": json.dumps(tf_config)},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return processes


def finish(processes: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Exit status and output of every process; any still running after TIMEOUT is killed."""
    results = []
    for process in processes:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results.append((process.returncode, output))
    return results


def validation_accuracy(version_dir: Path, digits_dir: Path) -> float:
    """Accuracy of the exported serving_default on the digits' held-out validation images."""
    _, validation = split(open_dataset(str(digits_dir)), 0.2, 1337)
    size = (IMAGE_SIZE, IMAGE_SIZE)
    images = np.stack([np.asarray(Image.open(path).convert("RGB").resize(size)) for path, _ in validation])
    labels = np.array([label for _, label in validation])
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    probabilities = serve(images=tf.constant(images, tf.float32))["probabilities"].numpy()
    return float(np.mean(probabilities.argmax(axis=1) == labels))


@pytest.mark.slow
def test_two_workers_train_together_and_export_exactly_one_version(tmp_path: Path, digits_dir: Path) -> None:
    store = tmp_path / "store"
    args = [
        "train",
        f"--data={digits_dir}",
        f"--model-store=file://{store}",
        "--model-name=digits",
        "--backbone=small-cnn",
        "--weights=none",
        f"--image-size={IMAGE_SIZE}",
        f"--epochs={EPOCHS}",
        "--batch-size=16",  # per replica: the global batch of 32 a single device trains with
        "--learning-rate=2e-3",  # quickstart's rate: three short epochs have to learn the digits
    ]
    results = finish(start_workers(args, 2), timeout=600)
    for code, output in results:
        assert code == 0, output[-4000:]
    chief_output = results[0][1]
    assert f"Epoch {EPOCHS}/{EPOCHS}" in chief_output and f"Epoch {EPOCHS}/{EPOCHS}" in results[1][1]
    assert "model 'digits' version 1" in chief_output and "version 1" not in results[1][1]

    models = ModelStore(f"file://{store}")
    assert models.versions("digits") == [1]
    metadata = models.read_metadata("digits", 1)
    assert metadata is not None
    assert (metadata["workers"], metadata["replicas"], metadata["epochs"]) == (2, 2, EPOCHS)
    accuracy = validation_accuracy(store / "models" / "digits" / "1", digits_dir)
    assert accuracy > 0.5, chief_output[-3000:]  # chance is 0.1
    assert accuracy == pytest.approx(metadata["metrics"]["val_accuracy"], abs=0.01)  # the loop's own count
    assert not (store / "checkpoints" / "digits" / metadata["run_id"]).exists()


@pytest.mark.slow
def test_two_devices_of_one_machine_train_through_the_replicated_loop(
    tmp_path: Path, digits_dir: Path
) -> None:
    store = tmp_path / "store"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(TWO_LOGICAL_CPUS),
            str(digits_dir),
            f"file://{store}",
            str(EPOCHS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert f"Epoch {EPOCHS}/{EPOCHS} - " in result.stdout  # the replicated loop's line, not Keras' fit
    metadata = ModelStore(f"file://{store}").read_metadata("digits", 1)
    assert metadata is not None
    assert (metadata["workers"], metadata["replicas"], metadata["epochs"]) == (1, 2, EPOCHS)
    accuracy = validation_accuracy(store / "models" / "digits" / "1", digits_dir)
    assert accuracy > 0.5, output[-3000:]
    assert accuracy == pytest.approx(metadata["metrics"]["val_accuracy"], abs=0.01)


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_both_the_chief_saves_and_the_rerun_resumes(
    tmp_path: Path, digits_dir: Path
) -> None:
    data = small_dataset(tmp_path / "data", digits_dir, classes=3, per_class=60)
    store = tmp_path / "store"
    args = [
        "train",
        f"--data={data}",
        f"--model-store=file://{store}",
        "--model-name=digits",
        "--backbone=small-cnn",
        "--weights=none",
        "--image-size=16",
        "--epochs=12",
        "--batch-size=4",
    ]
    workers = start_workers(args, 2)
    assert workers[0].stdout is not None
    chief_lines = []
    for line in workers[0].stdout:
        chief_lines.append(line)
        if "checkpoint: epoch 2 saved" in line:
            workers[1].send_signal(signal.SIGTERM)  # the notice reaches the other worker, not the chief
            break
    (chief_code, chief_rest), (other_code, other_output) = finish(workers, timeout=300)
    chief_output = "".join(chief_lines) + chief_rest
    assert (chief_code, other_code) == (EXIT_PREEMPTED, EXIT_PREEMPTED), (
        chief_output[-3000:] + other_output[-3000:]
    )
    stops = [
        re.findall(r"a worker was preempted during epoch \d+", out) for out in (chief_output, other_output)
    ]
    assert len(stops[0]) == 1 and stops[0] == stops[1]  # both stopped in the same epoch, once
    saved = [int(n) for n in re.findall(r"checkpoint: epoch (\d+) saved", chief_output)]
    assert 2 <= saved[-1] < 12
    assert "checkpoint:" not in other_output  # only the chief writes checkpoints
    [state_file] = list((store / "checkpoints" / "digits").glob(f"*/{STATE_FILE}"))
    assert json.loads(state_file.read_text())["epochs_done"] == saved[-1]
    assert ModelStore(f"file://{store}").versions("digits") == []

    rerun = finish(start_workers(args, 2), timeout=600)
    for code, output in rerun:
        assert code == 0, output[-4000:]
        assert f"resuming from epoch {saved[-1] + 1} of 12" in output and "Epoch 1/12" not in output
    metadata = ModelStore(f"file://{store}").read_metadata("digits", 1)
    assert metadata is not None and (metadata["epochs"], metadata["workers"]) == (12, 2)
    assert ModelStore(f"file://{store}").versions("digits") == [1]
