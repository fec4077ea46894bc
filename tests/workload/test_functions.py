"""The TFLite function predictor behind Lambda, GCP and Azure Functions answers like the server."""

from __future__ import annotations

import base64
import functools
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.emulators import answers, environ, free_port, server_process
from tests.workload.serving import (
    MODEL_NAME,
    REPO,
    b64,
    digit_samples,
    exported_version,
    new_store,
    serve_process,
)

Call = Callable[[str, str, bytes], tuple[int, dict]]
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
CLASSIFY = f"/v1/models/{MODEL_NAME}:classify"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory, trained_store) -> str:
    folder = exported_version(trained_store.store_url, MODEL_NAME, tmp_path_factory.mktemp("version"))
    return new_store(tmp_path_factory.mktemp("function-store"), folder)


@pytest.fixture(scope="module")
def function_env(store_url: str, tmp_path_factory: pytest.TempPathFactory):
    cache = str(tmp_path_factory.mktemp("function-cache"))
    with environ(MODEL_STORE=store_url, MODEL_NAME=MODEL_NAME, CLOUD_AI_CACHE=cache):
        yield


@pytest.fixture(scope="module")
def server(store_url: str):
    with serve_process(store_url) as url:
        yield url


def server_call(url: str) -> Call:
    def call(method: str, path: str, body: bytes) -> tuple[int, dict]:
        response = requests.request(method, url + path, data=body, timeout=60)
        return response.status_code, response.json()

    return call


def lambda_call(method: str, path: str, body: bytes) -> tuple[int, dict]:
    """The handler with AWS's payload format 2.0 event, as a Function URL delivers it (body base64)."""
    from workload.functions.aws import handler

    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1"},
            "stage": "$default",
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }
    reply = handler(event, None)
    assert reply["headers"]["Content-Type"] == "application/json"
    return reply["statusCode"], json.loads(reply["body"])


def azure_call(method: str, path: str, body: bytes) -> tuple[int, dict]:
    """The function registered in function_app.py, called with an azure.functions HttpRequest."""
    import azure.functions as func

    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071{path}",
        headers={"Content-Type": "application/json"},
        route_params={"path": path.lstrip("/")},
        body=body,
    )
    response = _azure_function()(request)
    return response.status_code, json.loads(response.get_body())


@functools.cache
def _azure_function() -> Callable:
    """The one HTTP function function_app.py registers, as the Functions host indexes it."""
    location = REPO / "workload" / "functions" / "azure" / "function_app.py"
    spec = importlib.util.spec_from_file_location("cloud_ai_function_app", location)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (function,) = module.app.get_functions()
    assert function.is_http_function()
    return function.get_user_function()


@pytest.fixture(scope="module")
def gcp_function(function_env):
    """functions-framework serving workload/functions/gcp.py:predict as a real local server."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--source=workload/functions/gcp.py",
        "--target=predict",
        f"--port={port}",
        "--host=127.0.0.1",
    ]
    url = f"http://127.0.0.1:{port}"
    with server_process(command, answers(f"{url}/"), "functions-framework"):
        yield url


@pytest.fixture(scope="module")
def calls(function_env, server, gcp_function) -> dict[str, Call]:
    return {
        "server": server_call(server),
        "aws": lambda_call,
        "gcp": server_call(gcp_function),
        "azure": azure_call,
    }


@pytest.fixture(scope="module")
def samples() -> tuple[list[bytes], list[str]]:
    return digit_samples(8, offset=1500)


def test_every_function_predicts_what_the_server_predicts(calls, samples):
    encoded, _ = samples
    body = json.dumps({"instances": [b64(e) for e in encoded]}).encode()
    answers = {where: call("POST", PREDICT, body) for where, call in calls.items()}
    expected = np.array(answers["server"][1]["predictions"])
    assert expected.shape == (len(encoded), 10)
    for where, (status, document) in answers.items():
        assert status == 200, (where, document)
        np.testing.assert_allclose(np.array(document["predictions"]), expected, atol=1e-4, err_msg=where)


def test_every_function_classifies_like_the_server(calls, samples):
    encoded, _ = samples
    body = json.dumps({"examples": [{"image": b64(e)} for e in encoded]}).encode()
    answers = {where: call("POST", CLASSIFY, body) for where, call in calls.items()}
    expected = answers["server"][1]["results"]
    for where, (status, document) in answers.items():
        assert status == 200, where
        assert [[label for label, _ in pairs] for pairs in document["results"]] == [
            [label for label, _ in pairs] for pairs in expected
        ], where
        scores = np.array([[score for _, score in pairs] for pairs in document["results"]])
        np.testing.assert_allclose(scores, [[s for _, s in pairs] for pairs in expected], atol=1e-4)


def test_a_post_to_any_other_path_is_predict_or_classify_by_its_body(function_env, samples):
    encoded, _ = samples
    predict = json.dumps({"inputs": [b64(encoded[0])]}).encode()
    classify = json.dumps({"examples": [{"image": b64(encoded[0])}]}).encode()
    assert set(lambda_call("POST", "/", predict)[1]) == {"outputs"}
    assert "results" in azure_call("POST", "/api/predict", classify)[1]
    status, document = lambda_call("GET", "/", b"")
    assert status == 200
    assert document["model_version_status"][0]["version"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", PREDICT, b"{oops"),
        ("POST", PREDICT, b'{"instances": [[1, 2]], "inputs": [[1, 2]]}'),
        ("POST", PREDICT, b'{"instances": [[[1, 2, 3]]]}'),
        ("POST", PREDICT, b'{"instances": [{"b64": "bm90IGFuIGltYWdl"}]}'),
        ("POST", CLASSIFY, b'{"examples": [{}]}'),
        ("POST", "/v1/models/other:predict", b'{"instances": [[0]]}'),
        ("GET", f"/v1/models/{MODEL_NAME}/versions/5", b""),
        ("GET", f"/v1/models/{MODEL_NAME}/metadata", b""),
    ],
)
def test_errors_and_metadata_match_the_server(calls, method, path, body):
    answers = {where: call(method, path, body) for where, call in calls.items()}
    assert len({json.dumps(answer, sort_keys=True) for answer in answers.values()}) == 1, answers


def test_the_predictor_and_adapters_never_import_tensorflow(function_env, samples):
    script = f"""
import base64, importlib.util, json, sys
from workload.functions import aws, gcp
from workload import predictor
spec = importlib.util.spec_from_file_location("app", "workload/functions/azure/function_app.py")
spec.loader.exec_module(importlib.util.module_from_spec(spec))
event = {{"rawPath": "{PREDICT}", "requestContext": {{"http": {{"method": "POST"}}}},
         "body": json.dumps({{"instances": [{json.dumps(b64(samples[0][0]))}]}}), "isBase64Encoded": False}}
assert aws.handler(event, None)["statusCode"] == 200
assert "tensorflow" not in sys.modules, "a function module imported TensorFlow"
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_predictor_reads_a_remote_store_once_per_instance(s3_store, trained_store, tmp_path):
    from workload.predictor import FunctionPredictor
    from workload.store import ModelStore

    folder = exported_version(trained_store.store_url, MODEL_NAME, tmp_path / "version")
    version = ModelStore(s3_store).publish_version("s3-digits", folder)
    with environ(CLOUD_AI_CACHE=str(tmp_path / "cache")):
        predictor = FunctionPredictor(s3_store, "s3-digits")
        reply = predictor.handle("GET", "/v1/models/s3-digits", b"")
        assert reply.status == 200
        assert reply.document["model_version_status"][0]["version"] == str(version)
        cached = tmp_path / "cache" / "function-models" / "s3-digits" / str(version)
        assert sorted(p.name for p in cached.iterdir()) == ["labels.txt", "metadata.json", "model.tflite"]
