"""Where training runs: one device, several GPUs of one machine, or several machines (TF_CONFIG).

Mixed precision is switched on only for GPUs that compute float16 fast (compute capability >= 7.0).
"""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

MIXED_PRECISION_CAPABILITY = (7, 0)


def _cluster() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def choose_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirrored when TF_CONFIG names several workers, Mirrored for several GPUs, else default.

    Call it before any other TensorFlow work: the multi-worker runtime must start first.
    """
    workers = _cluster().get("cluster", {}).get("worker", [])
    if len(workers) > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy()
        log.info("multi-worker training: %d workers, this is %s", len(workers), _cluster().get("task"))
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
