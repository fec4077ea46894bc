"""Where training runs: one device, several GPUs of one machine, or several machines (TF_CONFIG).

Mixed precision is switched on only for GPUs that compute float16 fast (compute capability >= 7.0).

Keras 3's `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so whenever
training is replicated, `ReplicatedSteps` runs the epochs itself: one `strategy.run` per batch, the loss
averaged over the global batch, and every step all-reduces a stop flag so that a preemption notice to
any worker stops all of them after the same batch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

MIXED_PRECISION_CAPABILITY = (7, 0)


def _cluster() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def worker_count() -> int:
    """How many machines train together: the workers (and chief) TF_CONFIG names, at least 1."""
    cluster = _cluster().get("cluster", {})
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def is_replicated(strategy: tf.distribute.Strategy) -> bool:
    """Whether training needs the replicated loop rather than `model.fit`."""
    return strategy.num_replicas_in_sync > 1 or worker_count() > 1


def choose_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored for several GPUs, else default.

    Call it before any other TensorFlow work: the multi-worker runtime must start first.
    """
    workers = worker_count()
    if workers > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy()
        log.info("multi-worker training: %d workers, this is %s", workers, _cluster().get("task"))
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("training on %d GPUs of this machine", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """The one process that writes checkpoints and exports: the `chief` task, or worker 0 without one."""
    cluster = _cluster()
    task = cluster.get("task", {})
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (
        task.get("type") == "worker"
        and int(task.get("index", 0)) == 0
        and "chief" not in cluster.get("cluster", {})
    )


def use_mixed_precision_if_fast() -> bool:
    """Switch Keras to mixed_float16 when every visible GPU has compute capability >= 7.0."""
    gpus = tf.config.list_physical_devices("GPU")
    capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
    fast = bool(gpus) and all(c is not None and tuple(c) >= MIXED_PRECISION_CAPABILITY for c in capabilities)
    if fast:
        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("mixed precision on (GPU compute capability %s)", capabilities)
    return fast


@dataclass(frozen=True)
class EpochResult:
    """Mean loss and accuracy over the examples seen; STOPPED when some worker asked to stop early."""

    loss: float
    accuracy: float
    stopped: bool = False


class ReplicatedSteps:
    """Training and evaluation steps of a compiled classifier, replicated by STRATEGY.

    The step functions return sums (loss, correct predictions, examples, stop requests) reduced over
    every replica of every worker, so each worker computes the same epoch means and the same decision
    to stop.
    """

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy, global_batch: int) -> None:
        self.model, self.strategy, self.global_batch = model, strategy, global_batch
        self.loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
        if not model.optimizer.built:  # its variables must exist before the step is traced, in scope
            with strategy.scope():
                model.optimizer.build(model.trainable_variables)
        self._train = tf.function(self._train_step, reduce_retracing=True)
        self._evaluate = tf.function(self._evaluate_step, reduce_retracing=True)

    def train_epoch(self, dataset: tf.distribute.DistributedDataset, stop: Callable[[], bool]) -> EpochResult:
        """One pass over DATASET; ends after the first batch in which STOP() was true on any worker."""
        totals = tf.zeros(4)
        for batch in dataset:
            step = self._train(batch, tf.constant(float(stop())))
            totals += step
            if step[3] > 0:
                return self._result(totals, stopped=True)
        return self._result(totals)

    def evaluate(self, dataset: tf.distribute.DistributedDataset) -> EpochResult:
        """Loss and accuracy over all of DATASET, without dropout, counted across every worker."""
        totals = tf.zeros(4)
        for batch in dataset:
            totals += self._evaluate(batch)
        return self._result(totals)

    def _train_step(self, batch: tuple, stop: tf.Tensor) -> tf.Tensor:
        def replica(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
            model, optimizer = self.model, self.model.optimizer
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                per_example = self.loss(labels, probabilities)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)
                scaled = optimizer.scale_loss(loss)  # mixed precision: a LossScaleOptimizer unscales
            gradients = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return _sums(labels, probabilities, per_example, stop)

        return self._reduce(self.strategy.run(replica, args=batch))

    def _evaluate_step(self, batch: tuple) -> tf.Tensor:
        def replica(images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
            probabilities = self.model(images, training=False)
            return _sums(labels, probabilities, self.loss(labels, probabilities), tf.constant(0.0))

        return self._reduce(self.strategy.run(replica, args=batch))

    def _reduce(self, per_replica: tf.Tensor) -> tf.Tensor:
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    @staticmethod
    def _result(totals: tf.Tensor, stopped: bool = False) -> EpochResult:
        loss_sum, correct, count, _ = (float(t) for t in totals.numpy())
        count = max(count, 1.0)
        return EpochResult(loss_sum / count, correct / count, stopped)


def _sums(labels: tf.Tensor, probabilities: tf.Tensor, per_example: tf.Tensor, stop: tf.Tensor) -> tf.Tensor:
    """[loss sum, correct predictions, examples, stop request] of one replica's batch, as float32."""
    predicted = tf.argmax(probabilities, axis=-1, output_type=labels.dtype)
    return tf.stack(
        [
            tf.reduce_sum(tf.cast(per_example, tf.float32)),
            tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32)),
            tf.cast(tf.size(labels), tf.float32),
            tf.cast(stop, tf.float32),
        ]
    )
