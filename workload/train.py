"""`cloud-ai train`: open dataset -> build pipeline -> build model -> fit with checkpoints -> export.

Spot-safe: the training state (weights, optimizer, epochs done, history) is saved every epoch and
mirrored to `<store>/checkpoints/<name>/<run-id>/`. SIGTERM (the preemption notice on AWS, GCP and
Azure) stops after the current batch, saves, and exits with EXIT_PREEMPTED; the same command run
again derives the same run id, finds the state and resumes from the next epoch.

One device trains with `model.fit`; several replicas or workers train with the replicated loop of
workload.distribute (Keras 3's fit fails under MultiWorkerMirroredStrategy). Both share the checkpoint
logic, and with several workers only the chief writes checkpoints and exports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import Any

import keras
import tensorflow as tf

from workload.data import SKIPPED_EXAMPLES, ImageFolder, Pipelines, build_pipeline, open_dataset
from workload.distribute import (
    ReplicatedSteps,
    choose_strategy,
    is_chief,
    is_replicated,
    use_mixed_precision_if_fast,
    worker_count,
)
from workload.errors import UserError
from workload.export import export_model
from workload.model import build_model
from workload.store import ModelStore, RemoteFolder

log = logging.getLogger(__name__)

EXIT_PREEMPTED = 75  # the trainer instances' startup script and the container rely on this number
WEIGHTS_FILE = "state.weights.h5"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class TrainSettings:
    """The arguments of one training run, checked."""

    data: str
    model_store: str
    model_name: str
    backbone: str = "mobilenet_v2"
    epochs: int = 10
    image_size: int = 224
    batch_size: int = 32
    weights: str = "imagenet"
    learning_rate: float = 1e-3
    validation_split: float = 0.2
    seed: int = 1337
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "image_size", "batch_size"):
            if getattr(self, name) < 1:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} {getattr(self, name)} is not allowed: expected a whole number >= 1")
        if not self.learning_rate > 0:
            raise UserError(f"--learning-rate {self.learning_rate} is not allowed: expected a number > 0")
        if not self.model_name or "/" in self.model_name:
            raise UserError(f"--model-name {self.model_name!r} is not allowed: expected a name without '/'")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainSettings:
        return cls(**{name: getattr(args, name) for name in cls.__dataclass_fields__})

    def derived_run_id(self, fingerprint: str) -> str:
        """Same arguments and same data -> same id, so a rerun of the same command finds its checkpoint."""
        facts = {**asdict(self), "run_id": None, "fingerprint": fingerprint}
        digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.backbone}-{self.image_size}px-{digest}"


class Preemption:
    """Turns SIGTERM into a flag that training checks after every batch."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        log.warning("SIGTERM: preemption notice, saving the training state after this batch")
        self.requested = True


@dataclass
class TrainingState:
    """What a resumed run needs besides the weights: epochs done and the history so far."""

    epochs_done: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)


class CheckpointMirror:
    """The run's state, saved locally after every epoch and mirrored to the store (by the chief only)."""

    def __init__(self, local: Path, remote: RemoteFolder, state: TrainingState, chief: bool) -> None:
        self.local, self.remote, self.state, self.chief = local, remote, state, chief

    def end_epoch(self, model: keras.Model, epoch: int, logs: dict[str, float]) -> None:
        """Record EPOCH's (0-based) metrics in the history and save."""
        for name, value in logs.items():
            self.state.history.setdefault(name, []).append(float(value))
        self.state.epochs_done = epoch + 1
        self.save(model)

    def save(self, model: keras.Model) -> None:
        """Weights and optimizer, then state.json last (it marks a complete copy), here and in the store."""
        if not self.chief:
            return
        model.save_weights(str(self.local / WEIGHTS_FILE), overwrite=True)
        (self.local / STATE_FILE).write_text(json.dumps(asdict(self.state)))
        self.remote.push(self.local, last=STATE_FILE)
        log.info("checkpoint: epoch %d saved to %s", self.state.epochs_done, self.remote.url)


class SpotCheckpoint(keras.callbacks.Callback):
    """`model.fit`'s side of the mirror: saves every epoch and stops after the batch a preemption came in."""

    def __init__(self, mirror: CheckpointMirror, preemption: Preemption) -> None:
        super().__init__()
        self.mirror, self.preemption = mirror, preemption

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.preemption.requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.preemption.requested:
            return  # a partial epoch: it is not counted, the caller saves the weights
        self.mirror.end_epoch(self.model, epoch, logs or {})


def restore(model: keras.Model, local: Path, remote: RemoteFolder) -> TrainingState:
    """Load the run's saved state from the store into MODEL, or a fresh state when there is none.

    Call it in the model's strategy scope: it builds the optimizer's variables.
    """
    if not remote.pull(local) or not (local / STATE_FILE).exists():
        return TrainingState()
    state = TrainingState(**json.loads((local / STATE_FILE).read_text()))
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(local / WEIGHTS_FILE))
    return state


def fit(
    model: keras.Model,
    pipelines: Pipelines,
    epochs: int,
    checkpoints: RemoteFolder,
    preemption: Preemption,
    strategy: tf.distribute.Strategy,
    global_batch: int,
) -> TrainingState | None:
    """Train to EPOCHS, resuming from the store's checkpoint; None when preempted (the state is saved)."""
    local = Path(tempfile.mkdtemp(prefix="cloud-ai-checkpoint-"))
    try:
        with strategy.scope():
            state = restore(model, local, checkpoints)
        if state.epochs_done:
            log.info("resuming from epoch %d of %d (%s)", state.epochs_done + 1, epochs, checkpoints.url)
        mirror = CheckpointMirror(local, checkpoints, state, is_chief())
        if is_replicated(strategy):
            stopped = fit_replicated(model, pipelines, epochs, mirror, preemption, strategy, global_batch)
        else:
            stopped = fit_one_device(model, pipelines, epochs, mirror, preemption)
        if stopped:
            mirror.save(model)
            return None
        return state
    finally:
        shutil.rmtree(local, ignore_errors=True)


def fit_one_device(
    model: keras.Model, pipelines: Pipelines, epochs: int, mirror: CheckpointMirror, preemption: Preemption
) -> bool:
    """`model.fit` with Keras' progress output; True when preempted."""
    model.fit(
        pipelines.train,
        validation_data=pipelines.validation,
        epochs=epochs,
        initial_epoch=mirror.state.epochs_done,
        callbacks=[SpotCheckpoint(mirror, preemption)],
        shuffle=False,  # the pipeline shuffles
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return preemption.requested


def fit_replicated(
    model: keras.Model,
    pipelines: Pipelines,
    epochs: int,
    mirror: CheckpointMirror,
    preemption: Preemption,
    strategy: tf.distribute.Strategy,
    global_batch: int,
) -> bool:
    """The replicated loop, one line per epoch; True when any worker was preempted (all stop together)."""
    steps = ReplicatedSteps(model, strategy, global_batch)
    train = strategy.experimental_distribute_dataset(pipelines.train)
    validation = strategy.experimental_distribute_dataset(pipelines.validation)
    for epoch in range(mirror.state.epochs_done, epochs):
        started = time.monotonic()
        trained = steps.train_epoch(train, lambda: preemption.requested)
        if trained.stopped:
            log.warning("stopping: a worker was preempted during epoch %d", epoch + 1)
            return True
        validated = steps.evaluate(validation)
        logs = {
            "accuracy": trained.accuracy,
            "loss": trained.loss,
            "val_accuracy": validated.accuracy,
            "val_loss": validated.loss,
        }
        print(
            f"Epoch {epoch + 1}/{epochs} - {time.monotonic() - started:.0f}s - "
            + " - ".join(f"{name}: {value:.4f}" for name, value in logs.items()),
            flush=True,
        )
        mirror.end_epoch(model, epoch, logs)
    return False


def run_metadata(
    settings: TrainSettings, run_id: str, folder: ImageFolder, state: TrainingState, replicas: int
) -> dict[str, Any]:
    """The facts metadata.json keeps about a run (the exporter adds classes, image size, version)."""
    last = {name: values[-1] for name, values in state.history.items() if values}
    return {
        "backbone": settings.backbone,
        "weights": settings.weights,
        "epochs": state.epochs_done,
        "workers": worker_count(),
        "replicas": replicas,
        "metrics": {**last, "best_val_accuracy": max(state.history.get("val_accuracy", [0.0]))},
        "dataset": {
            "url": settings.data,
            "fingerprint": folder.fingerprint,
            "images_per_class": folder.images_per_class,
        },
        "skipped_files": {
            "count": len(folder.skipped),
            "examples": [asdict(s) for s in folder.skipped[:SKIPPED_EXAMPLES]],
        },
        "run_id": run_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "workload_version": package_version("cloud-ai"),
    }


def command(args: argparse.Namespace) -> int:
    settings = TrainSettings.from_args(args)
    return train(settings, choose_strategy())


def train(settings: TrainSettings, strategy: tf.distribute.Strategy) -> int:
    """The whole run under STRATEGY (created before any other TensorFlow work); the exit status."""
    started = time.monotonic()
    preemption = Preemption()
    preemption.install()  # after the strategy: the multi-worker runtime must not replace our handler
    use_mixed_precision_if_fast()
    keras.utils.set_random_seed(settings.seed)

    folder = open_dataset(settings.data)
    global_batch = settings.batch_size * strategy.num_replicas_in_sync
    pipelines = build_pipeline(
        folder, settings.image_size, global_batch, settings.validation_split, settings.seed
    )
    with strategy.scope():
        model = build_model(
            settings.backbone,
            len(folder.class_names),
            settings.image_size,
            settings.weights,
            settings.learning_rate,
        )
    run_id = settings.run_id or settings.derived_run_id(folder.fingerprint)
    store = ModelStore(settings.model_store)
    checkpoints = store.checkpoints(settings.model_name, run_id)
    log.info(
        "run %s: %d training and %d validation images",
        run_id,
        pipelines.train_count,
        pipelines.validation_count,
    )

    state = fit(model, pipelines, settings.epochs, checkpoints, preemption, strategy, global_batch)
    if state is None:
        print(f"preempted: training state saved to {checkpoints.url}; run the same command again to resume")
        return EXIT_PREEMPTED
    if not is_chief():
        return 0

    metadata = run_metadata(settings, run_id, folder, state, strategy.num_replicas_in_sync)
    version = export_model(
        model,
        folder.class_names,
        settings.image_size,
        settings.model_store,
        settings.model_name,
        metadata,
        state.history,
    )
    checkpoints.remove()
    accuracy = metadata["metrics"].get("val_accuracy", float("nan"))
    where = f"{store.url}/models/{settings.model_name}/{version}"
    print(
        f"validation accuracy {accuracy:.3f} after {state.epochs_done} epochs "
        f"({time.monotonic() - started:.0f} s); model {settings.model_name!r} version {version} is in {where}"
    )
    return 0
