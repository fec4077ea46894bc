"""TF Serving's REST API without TensorFlow: request parsing, validation, response and error shapes.

The `cloud-ai serve` server and the function predictors both go through these functions, so a request
gets the same answer, or the same `{"error": ...}` with the same status, wherever it is sent.
Shapes follow https://www.tensorflow.org/tfx/serving/api_rest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workload import images
from workload.store import METADATA_FILE

LABELS_FILE = "labels.txt"
DEFAULT_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "serving_bytes"
FLOAT_INPUT = "images"
BYTES_INPUT = "image_bytes"
OUTPUT = "probabilities"
# Feature names :classify accepts for the image of an example, in the order they are looked up.
EXAMPLE_IMAGE_FEATURES = ("image", BYTES_INPUT, FLOAT_INPUT)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<tail>/metadata|:predict|:classify)?/?$"
)


class ApiError(Exception):
    """A request the API refuses; rendered as TF Serving's `{"error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.message}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def servable_not_found(name: str, version: int | None) -> ApiError:
    """TF Serving's own 404 wording, which some clients match on."""
    which = "Latest" if version is None else "Specific"
    spec = name if version is None else f"{name}, {version}"
    return ApiError(404, f"Servable not found for request: {which}({spec})")


@dataclass(frozen=True)
class ModelSignature:
    """What a model version takes and returns: float32 [batch, height, width, 3] 0-255 -> [batch, classes]."""

    height: int
    width: int
    labels: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    @classmethod
    def from_folder(cls, folder: Path) -> ModelSignature:
        """Read an exported version's metadata.json (`image_size`) and labels.txt (one class per line)."""
        metadata = json.loads((folder / METADATA_FILE).read_text())
        size = metadata["image_size"]
        height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        labels_file = folder / LABELS_FILE
        if labels_file.exists():
            labels = tuple(line.strip() for line in labels_file.read_text().splitlines() if line.strip())
        else:
            labels = tuple(str(c) for c in metadata["classes"])
        return cls(height, width, labels)


@dataclass(frozen=True)
class Route:
    """A parsed `/v1/models/{name}[/versions/{v}][/metadata|:predict|:classify]` path."""

    name: str
    version: int | None
    action: str  # "status" | "metadata" | "predict" | "classify"


def parse_route(path: str) -> Route | None:
    """The route a path names, None if it is not a /v1/models path; a non-integer version is a 404."""
    match = _ROUTE.match(path)
    if not match:
        return None
    version = parse_version(match["name"], match["version"])
    tail = match["tail"] or ""
    action = {"": "status", "/metadata": "metadata", ":predict": "predict", ":classify": "classify"}[tail]
    return Route(match["name"], version, action)


def parse_version(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise ApiError(404, f"Servable not found for request: Specific({name}, {text})")
    return int(text)


def parse_json(body: bytes) -> dict[str, Any]:
    """The request's JSON object; TF Serving accepts NaN and Infinity in it, and so does Python's json."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise bad_request(f"JSON Parse error: {error}") from None
    except RecursionError:
        raise bad_request("JSON Parse error: nested too deeply") from None
    if not isinstance(document, dict):
        raise bad_request("JSON Value is not an object")
    return document


def check_signature_name(document: dict[str, Any]) -> None:
    """Both exported signatures take images here (the bytes one as `{"b64": ...}`); no others exist."""
    name = document.get("signature_name")
    if name in (None, "", DEFAULT_SIGNATURE, BYTES_SIGNATURE):
        return
    raise bad_request(f'Serving signature name: "{name}" not found in signature def')


@dataclass(frozen=True)
class PredictRequest:
    """A validated :predict body: the image batch, and whether it came columnar (`inputs`) or as rows."""

    images: np.ndarray
    columnar: bool = field(default=False)


def parse_predict(body: bytes, signature: ModelSignature) -> PredictRequest:
    """Validate a :predict body into a float32 [batch, H, W, 3] array, or raise a 400."""
    return predict_request(parse_json(body), signature)


def predict_request(document: dict[str, Any], signature: ModelSignature) -> PredictRequest:
    """The image batch of a parsed :predict body (`instances` or `inputs`)."""
    check_signature_name(document)
    has_rows, has_columns = "instances" in document, "inputs" in document
    if has_rows == has_columns:
        raise bad_request(
            "Missing 'inputs' or 'instances' key" if not has_rows else "Both 'inputs' and 'instances' given"
        )
    if has_rows:
        return PredictRequest(_images_from_rows(document["instances"], signature), columnar=False)
    return PredictRequest(_images_from_columns(document["inputs"], signature), columnar=True)


def _images_from_rows(instances: Any, signature: ModelSignature) -> np.ndarray:
    if not isinstance(instances, list) or not instances:
        raise bad_request("'instances' must be a non-empty list, one entry per image")
    if all(isinstance(row, list) for row in instances):
        return as_pixels(instances, signature, what="instances")
    rows = [_unwrap_named(row, index) for index, row in enumerate(instances)]
    return np.stack([one_image(row, signature, f"instances[{index}]") for index, row in enumerate(rows)])


def _unwrap_named(row: Any, index: int) -> Any:
    """A row may name its input: `{"images": [...]}` or `{"image_bytes": {"b64": ...}}`."""
    if isinstance(row, dict) and "b64" not in row:
        named = [key for key in (FLOAT_INPUT, BYTES_INPUT) if key in row]
        unknown = sorted(set(row) - {FLOAT_INPUT, BYTES_INPUT})
        if unknown or len(named) != 1:
            raise bad_request(f"instances[{index}]: expected exactly one of '{FLOAT_INPUT}', '{BYTES_INPUT}'")
        return row[named[0]]
    return row


def _images_from_columns(inputs: Any, signature: ModelSignature) -> np.ndarray:
    if isinstance(inputs, dict) and "b64" not in inputs:
        named = [key for key in (FLOAT_INPUT, BYTES_INPUT) if key in inputs]
        if len(named) != 1 or len(inputs) != 1:
            raise bad_request(f"'inputs' must hold exactly one of '{FLOAT_INPUT}', '{BYTES_INPUT}'")
        inputs = inputs[named[0]]
    if not isinstance(inputs, list) or not inputs:
        raise bad_request("'inputs' must be a non-empty list, one entry per image")
    if all(isinstance(item, list) for item in inputs):
        return as_pixels(inputs, signature, what="inputs")
    return np.stack([one_image(item, signature, f"inputs[{index}]") for index, item in enumerate(inputs)])


def one_image(value: Any, signature: ModelSignature, where: str) -> np.ndarray:
    """One image, given as `{"b64": ...}` encoded bytes or as nested [H, W, 3] pixel values."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            data = images.decode_base64(value["b64"])
            return images.decode_image(data, signature.height, signature.width)
        except images.ImageError as error:
            raise bad_request(f"{where}: {error}") from None
    if isinstance(value, list):
        return as_pixels([value], signature, what=where)[0]
    raise bad_request(
        f'{where}: expected {{"b64": "<JPEG/PNG bytes>"}} or a [{_shape(signature)}] array of numbers'
    )


def as_pixels(values: list[Any], signature: ModelSignature, what: str) -> np.ndarray:
    """Nested lists -> float32 [batch, H, W, 3]; anything ragged, non-numeric or mis-shaped is a 400."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        raise bad_request(f"{what}: not a rectangular array of numbers") from None
    if array.dtype.kind not in "iuf":
        raise bad_request(f"{what}: expected numbers (DT_FLOAT), got {_describe(array)}")
    expected = (len(values), *signature.input_shape)
    if array.shape != expected:
        got = ", ".join(str(d) for d in array.shape)
        raise bad_request(f"{what}: expected shape [{len(values)}, {_shape(signature)}], got [{got}]")
    return array.astype(np.float32, copy=False)


def _shape(signature: ModelSignature) -> str:
    return ", ".join(str(d) for d in signature.input_shape)


def _describe(array: np.ndarray) -> str:
    return {"b": "booleans", "U": "strings", "S": "strings", "O": "mixed or ragged values"}.get(
        array.dtype.kind, str(array.dtype)
    )


def parse_classify(body: bytes, signature: ModelSignature) -> np.ndarray:
    """Validate a :classify body (`examples`, optional shared `context`) into an image batch."""
    return classify_images(parse_json(body), signature)


def classify_images(document: dict[str, Any], signature: ModelSignature) -> np.ndarray:
    """The image batch of a parsed :classify body."""
    check_signature_name(document)
    examples = document.get("examples")
    if not isinstance(examples, list) or not examples:
        raise bad_request("'examples' must be a non-empty list of objects")
    context = document.get("context") or {}
    if not isinstance(context, dict):
        raise bad_request("'context' must be an object of features")
    batch = []
    for index, example in enumerate(examples):
        if not isinstance(example, dict):
            raise bad_request(f"examples[{index}] must be an object of features")
        features = {**context, **example}
        feature = next((name for name in EXAMPLE_IMAGE_FEATURES if name in features), None)
        if feature is None:
            raise bad_request(f"examples[{index}] has no 'image' feature")
        batch.append(one_image(features[feature], signature, f"examples[{index}].{feature}"))
    return np.stack(batch)


def predict_response(probabilities: np.ndarray, columnar: bool) -> dict[str, Any]:
    """One named output, so TF Serving omits its name: rows -> `predictions`, columnar -> `outputs`."""
    return {"outputs" if columnar else "predictions": probabilities.tolist()}


def classify_response(probabilities: np.ndarray, labels: tuple[str, ...], top_k: int) -> dict[str, Any]:
    """Top-k `[label, score]` pairs per example, best first.

    TF Serving's classify answers under `result`; this project's contract names it `results`.
    Both keys carry the same list so clients written for either keep working.
    """
    k = max(1, min(top_k, probabilities.shape[1]))
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    results = [
        [[labels[i], float(row[i])] for i in order] for row, order in zip(probabilities, best, strict=True)
    ]
    return {"result": results, "results": results}


def status_response(versions: list[int]) -> dict[str, Any]:
    """TF Serving's GetModelStatusResponse for the versions that are loaded and answering."""
    return {
        "model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in sorted(versions, reverse=True)
        ]
    }


def metadata_response(name: str, version: int, signature: ModelSignature) -> dict[str, Any]:
    """TF Serving's GetModelMetadataResponse: `metadata.signature_def` with both exported signatures."""

    def tensor(tensor_name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
        return {
            "dtype": dtype,
            "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
            "name": f"{tensor_name}:0",
        }

    classes = len(signature.labels)
    outputs = {OUTPUT: tensor(OUTPUT, "DT_FLOAT", [-1, classes])}
    predict = "tensorflow/serving/predict"
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(version)},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    DEFAULT_SIGNATURE: {
                        "inputs": {
                            FLOAT_INPUT: tensor(FLOAT_INPUT, "DT_FLOAT", [-1, *signature.input_shape])
                        },
                        "outputs": outputs,
                        "method_name": predict,
                    },
                    BYTES_SIGNATURE: {
                        "inputs": {BYTES_INPUT: tensor(BYTES_INPUT, "DT_STRING", [-1])},
                        "outputs": outputs,
                        "method_name": predict,
                    },
                }
            }
        },
    }


def dumps(document: dict[str, Any]) -> bytes:
    """JSON bytes of a response."""
    return json.dumps(document, separators=(",", ":")).encode()
