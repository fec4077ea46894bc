"""The function predictor: one TFLite model version behind the same API as `cloud-ai serve`, without TF.

Cloud functions start cold often, so this core imports no TensorFlow (ai-edge-litert, numpy, Pillow and
fsspec only), fetches just `model.tflite`, `labels.txt` and `metadata.json` of the latest complete
version once per instance (cached on local disk), and answers :predict / :classify bodies with the
exact shapes and errors of the server (both go through workload.api). Adapters per cloud live in
workload.functions and only translate their platform's request and response objects.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workload import api
from workload.store import CACHE_ENV, ModelStore

log = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
FUNCTION_FILES = (TFLITE_FILE, api.LABELS_FILE, api.METADATA_FILE)
DEFAULT_TOP_K = 5
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """A status and a JSON document: what every adapter turns into its platform's response."""

    status: int
    document: dict[str, Any]

    @property
    def body(self) -> bytes:
        return api.dumps(self.document)

    @classmethod
    def error(cls, error: api.ApiError) -> Reply:
        return cls(error.status, error.body())


class TFLiteModel:
    """A model.tflite with float input [batch, H, W, 3] 0-255 and one probabilities output."""

    def __init__(self, version: int, folder: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.version = version
        self.signature = api.ModelSignature.from_folder(folder)
        self._interpreter = Interpreter(model_path=str(folder / TFLITE_FILE))
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch_size = 0
        self._lock = threading.Lock()  # one interpreter, one invocation at a time

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float32 [batch, H, W, 3] 0-255 -> class probabilities [batch, classes]."""
        with self._lock:
            if len(images) != self._batch_size:
                self._interpreter.resize_tensor_input(self._input, list(images.shape))
                self._interpreter.allocate_tensors()
                self._batch_size = len(images)
            self._interpreter.set_tensor(self._input, np.ascontiguousarray(images, dtype=np.float32))
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output))


def cache_root() -> Path:
    """Where versions are cached: $CLOUD_AI_CACHE, else the temp folder (the writable /tmp of functions)."""
    return Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "cloud-ai")


def fetch_function_files(store: ModelStore, name: str, version: int, root: Path) -> Path:
    """The local folder with this version's TFLite files, downloaded once and checked against the manifest."""
    folder = root / "function-models" / name / str(version)
    if _has_function_files(folder):
        return folder
    staging = folder.with_name(f".{version}-{uuid.uuid4().hex}")
    try:
        store.download_version(name, version, staging, only=FUNCTION_FILES)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _has_function_files(folder: Path) -> bool:
    if not all((folder / file).is_file() for file in FUNCTION_FILES):
        return False
    manifest = json.loads((folder / api.METADATA_FILE).read_text()).get("manifest", {})
    return all((folder / f).stat().st_size == manifest[f] for f in FUNCTION_FILES if f in manifest)


class FunctionPredictor:
    """Answers TF Serving-style requests for one model from its latest complete version."""

    def __init__(self, store_url: str, model_name: str, top_k: int = DEFAULT_TOP_K) -> None:
        self.store = ModelStore(store_url)
        self.model_name = model_name
        self.top_k = top_k
        self._model: TFLiteModel | None = None
        self._load_lock = threading.Lock()

    def model(self) -> TFLiteModel:
        """The version this instance serves, loaded on first use; a 404 while the store has none."""
        with self._load_lock:
            if self._model is None:
                version = self.store.latest_version(self.model_name)
                if version is None:
                    raise api.servable_not_found(self.model_name, None)
                folder = fetch_function_files(self.store, self.model_name, version, cache_root())
                self._model = TFLiteModel(version, folder)
                log.info("loaded %s version %d from %s", self.model_name, version, self.store.url)
            return self._model

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        """One HTTP request -> a reply; never raises: bad input is a 4xx, anything else a logged 500."""
        try:
            return self._answer(method.upper(), path, body)
        except api.ApiError as error:
            return Reply.error(error)
        except Exception:
            log.exception("internal error answering %s %s", method, path)
            return Reply(500, {"error": "internal server error; see the function log"})

    def _answer(self, method: str, path: str, body: bytes) -> Reply:
        route = api.parse_route(path)
        if route is not None and route.name != self.model_name:
            raise api.servable_not_found(route.name, route.version)
        model = self.model()
        if route is not None and route.version not in (None, model.version):
            raise api.servable_not_found(route.name, route.version)
        action = route.action if route is not None else ("post" if method == "POST" else "status")
        expected = "GET" if action in ("status", "metadata") else "POST"
        if method != expected:
            raise api.ApiError(405, f"{method} is not allowed here; use {expected}")
        if action == "status":
            return Reply(200, api.status_response([model.version]))
        if action == "metadata":
            return Reply(200, api.metadata_response(self.model_name, model.version, model.signature))
        if len(body) > MAX_BODY_BYTES:
            raise api.ApiError(413, f"request body is larger than the limit of {MAX_BODY_BYTES} bytes")
        document = api.parse_json(body)
        if action == "classify" or (action == "post" and "examples" in document):
            probabilities = model.predict(api.classify_images(document, model.signature))
            return Reply(200, api.classify_response(probabilities, model.signature.labels, self.top_k))
        request = api.predict_request(document, model.signature)
        return Reply(200, api.predict_response(model.predict(request.images), request.columnar))
