"""The OpenAPI 3.0 description served at `/openapi.json`: what clients (and the fuzz tests) can call."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "description": "TF Serving's error shape",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
        }
    },
}
_B64 = {"type": "object", "properties": {"b64": {"type": "string", "format": "byte"}}, "required": ["b64"]}
_PIXELS = {"type": "array", "description": "[H, W, 3] pixel values 0-255", "items": {"type": "array"}}
_IMAGE = {"oneOf": [_B64, _PIXELS]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _parameters(model_name: str, with_version: bool) -> list[dict[str, Any]]:
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": [model_name]},
    }
    version = {"name": "version", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    return [name, version] if with_version else [name]


def _model_paths(prefix: str, model_name: str, with_version: bool) -> dict[str, Any]:
    params = _parameters(model_name, with_version)
    errors = {"400": _ERROR, "404": _ERROR, "413": _ERROR}
    predict_body = {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "enum": ["serving_default", "serving_bytes"]},
            "instances": {"type": "array", "minItems": 1, "items": _IMAGE},
            "inputs": {"type": "array", "minItems": 1, "items": _IMAGE},
        },
    }
    classify_body = {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string"},
            "examples": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "object", "properties": {"image": _IMAGE}, "required": ["image"]},
            },
        },
        "required": ["examples"],
    }
    return {
        prefix: {
            "get": {
                "summary": "Model version status (TF Serving GetModelStatus)",
                "parameters": params,
                "responses": {"200": _json({"type": "object"}, "model_version_status list"), "404": _ERROR},
            }
        },
        f"{prefix}/metadata": {
            "get": {
                "summary": "Signature inputs and outputs (TF Serving GetModelMetadata)",
                "parameters": params,
                "responses": {"200": _json({"type": "object"}, "metadata.signature_def"), "404": _ERROR},
            }
        },
        f"{prefix}:predict": {
            "post": {
                "summary": "Class probabilities: `instances` -> `predictions`, `inputs` -> `outputs`",
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/json": {"schema": predict_body}}},
                "responses": {"200": _json({"type": "object"}, "predictions or outputs"), **errors},
            }
        },
        f"{prefix}:classify": {
            "post": {
                "summary": "Top-k [label, score] pairs per example",
                "parameters": params,
                "requestBody": {"required": True, "content": {"application/json": {"schema": classify_body}}},
                "responses": {
                    "200": _json({"type": "object"}, "results (also as TF Serving's result)"),
                    **errors,
                },
            }
        },
    }


def openapi_spec(model_name: str) -> dict[str, Any]:
    """The API of a server that serves MODEL_NAME."""
    text = {"description": "plain text", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "cloud-ai model server",
            "version": "1",
            "description": f"TensorFlow Serving-compatible REST API serving the model `{model_name}`.",
        },
        "paths": {
            **_model_paths("/v1/models/{name}", model_name, with_version=False),
            **_model_paths("/v1/models/{name}/versions/{version}", model_name, with_version=True),
            "/healthz": {"get": {"summary": "Liveness: the process answers", "responses": {"200": text}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: 200 once a model version is loaded, 503 until then",
                    "responses": {"200": text, "503": text},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": text}}},
        },
    }
