"""Thin adapters that put the shared TFLite predictor (workload.predictor) behind each cloud's functions.

Every adapter reads `MODEL_STORE` (a store URL) and `MODEL_NAME` from the environment, hands the
method, path and body to one `FunctionPredictor` per instance, and returns its status and JSON.
Paths: TF Serving's `/v1/models/{name}[/versions/{v}][:predict|:classify|/metadata]`; on any other
path a POST is a :classify when its body has `examples` and a :predict otherwise, and a GET is the
model status. Nothing here imports TensorFlow: the function images ship ai-edge-litert only.
"""

from __future__ import annotations

import functools
import os

from workload.predictor import FunctionPredictor

MODEL_STORE_ENV = "MODEL_STORE"
MODEL_NAME_ENV = "MODEL_NAME"


@functools.cache
def shared_predictor() -> FunctionPredictor:
    """The instance's predictor, made on first use from the environment the infra sets."""
    missing = [name for name in (MODEL_STORE_ENV, MODEL_NAME_ENV) if not os.environ.get(name)]
    if missing:
        raise RuntimeError(f"the function is not configured: set {' and '.join(missing)}")
    return FunctionPredictor(os.environ[MODEL_STORE_ENV], os.environ[MODEL_NAME_ENV])
