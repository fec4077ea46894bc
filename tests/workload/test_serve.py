"""`cloud-ai serve` as a real process, spoken to the way a TensorFlow Serving client would."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.workload.serving import (
    MODEL_NAME,
    b64,
    digit_samples,
    exported_version,
    new_store,
    pixels,
    serve_process,
)
from workload.store import ModelStore

TOP_K = 3


@pytest.fixture(scope="module")
def version_folder(tmp_path_factory: pytest.TempPathFactory, trained_store) -> Path:
    return exported_version(trained_store.store_url, MODEL_NAME, tmp_path_factory.mktemp("version"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, version_folder: Path):
    store_url = new_store(tmp_path_factory.mktemp("serve-store"), version_folder)
    options = [f"--top-k={TOP_K}", "--max-body-mb=1", "--batch-timeout-ms=20", "--poll-seconds=0.5"]
    with serve_process(store_url, *options) as url:
        yield url


@pytest.fixture(scope="module")
def samples() -> tuple[list[bytes], list[str]]:
    return digit_samples(6)


def predict(url: str, body: dict, path: str = f"/v1/models/{MODEL_NAME}:predict") -> requests.Response:
    return requests.post(url + path, json=body, timeout=60)


def test_status_lists_the_largest_version_as_available(server):
    response = requests.get(f"{server}/v1/models/{MODEL_NAME}", timeout=10)
    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_metadata_describes_inputs_and_outputs(server, version_folder):
    labels = (version_folder / "labels.txt").read_text().split()
    for path in (f"/v1/models/{MODEL_NAME}/metadata", f"/v1/models/{MODEL_NAME}/versions/1/metadata"):
        document = requests.get(server + path, timeout=10).json()
        assert document["model_spec"] == {"name": MODEL_NAME, "signature_name": "", "version": "1"}
        signature = document["metadata"]["signature_def"]["signature_def"]["serving_default"]
        image_dims = [d["size"] for d in signature["inputs"]["images"]["tensor_shape"]["dim"]]
        assert image_dims == ["-1", "32", "32", "3"]
        assert signature["inputs"]["images"]["dtype"] == "DT_FLOAT"
        output_dims = [d["size"] for d in signature["outputs"]["probabilities"]["tensor_shape"]["dim"]]
        assert output_dims == ["-1", str(len(labels))]


def test_float_pixels_and_b64_images_get_the_same_predictions(server, samples):
    encoded, _ = samples
    as_floats = predict(server, {"instances": [pixels(e) for e in encoded]})
    as_b64 = predict(server, {"instances": [b64(e) for e in encoded]})
    named = predict(server, {"instances": [{"image_bytes": b64(e)} for e in encoded]})
    assert as_floats.status_code == as_b64.status_code == named.status_code == 200
    floats = np.array(as_floats.json()["predictions"])
    assert floats.shape == (len(encoded), 10)
    np.testing.assert_allclose(floats.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.array(as_b64.json()["predictions"]), floats, atol=1e-5)
    np.testing.assert_allclose(np.array(named.json()["predictions"]), floats, atol=1e-5)


def test_columnar_inputs_answer_outputs(server, samples):
    encoded, _ = samples
    rows = np.array(predict(server, {"instances": [b64(e) for e in encoded]}).json()["predictions"])
    for body in ({"inputs": [b64(e) for e in encoded]}, {"inputs": {"images": [pixels(e) for e in encoded]}}):
        response = predict(server, body)
        assert response.status_code == 200
        assert set(response.json()) == {"outputs"}
        np.testing.assert_allclose(np.array(response.json()["outputs"]), rows, atol=1e-5)


def test_classify_answers_top_k_labels_best_first(server, samples, version_folder):
    encoded, _ = samples
    labels = (version_folder / "labels.txt").read_text().split()
    probabilities = np.array(predict(server, {"instances": [b64(e) for e in encoded]}).json()["predictions"])
    body = {"examples": [{"image": b64(e)} for e in encoded]}
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}:classify", json=body, timeout=60)
    assert response.status_code == 200
    results = response.json()["results"]
    assert response.json()["result"] == results  # TF Serving's own key, for its clients
    assert len(results) == len(encoded)
    for pairs, row in zip(results, probabilities, strict=True):
        assert len(pairs) == TOP_K
        scores = [score for _, score in pairs]
        assert scores == sorted(scores, reverse=True)
        assert pairs[0][0] == labels[int(np.argmax(row))]
        assert pairs[0][1] == pytest.approx(float(row.max()), abs=1e-5)


def test_a_version_in_the_url_selects_that_version(server, samples):
    encoded, _ = samples
    body = {"instances": [b64(encoded[0])]}
    assert predict(server, body, f"/v1/models/{MODEL_NAME}/versions/1:predict").status_code == 200
    status = requests.get(f"{server}/v1/models/{MODEL_NAME}/versions/1", timeout=10).json()
    assert status["model_version_status"][0]["version"] == "1"
    missing = predict(server, body, f"/v1/models/{MODEL_NAME}/versions/7:predict")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"Servable not found for request: Specific({MODEL_NAME}, 7)"}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        (":predict", b"{not json", 400, "JSON Parse error"),
        (":predict", b"[1, 2]", 400, "not an object"),
        (":predict", b'{"instances": [], "inputs": []}', 400, "Both"),
        (":predict", b'{"signature_name": "serving_default"}', 400, "Missing"),
        (":predict", b'{"instances": [[[1, 2, 3]]]}', 400, "expected shape [1, 32, 32, 3]"),
        (":predict", b'{"instances": [[["a", "b", "c"]]]}', 400, "expected numbers"),
        (":predict", b'{"instances": [{"b64": "bm90IGFuIGltYWdl"}]}', 400, "cannot decode image"),
        (":predict", b'{"instances": [{"b64": "***"}]}', 400, "not valid base64"),
        (":predict", b'{"instances": [{"b64": 5}]}', 400, "b64 must be a string"),
        (":predict", b'{"signature_name": "nope", "instances": [{"b64": ""}]}', 400, "nope"),
        (":classify", b'{"examples": [{"caption": "x"}]}', 400, "no 'image' feature"),
        (":classify", b'{"examples": "x"}', 400, "'examples' must be"),
    ],
)
def test_bad_requests_get_tf_serving_errors(server, path, body, status, message):
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}{path}", data=body, timeout=10)
    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_unknown_models_and_versions_are_404(server):
    for path in (
        "/v1/models/other",
        "/v1/models/other:predict",
        f"/v1/models/{MODEL_NAME}/versions/x/metadata",
    ):
        response = requests.post(server + path, json={"instances": [[0]]}, timeout=10)
        if path == "/v1/models/other":
            response = requests.get(server + path, timeout=10)
        assert response.status_code == 404, path
        assert "Servable not found" in response.json()["error"]
    assert requests.get(f"{server}/v2/anything", timeout=10).status_code == 404


def test_wrong_method_is_405(server):
    response = requests.get(f"{server}/v1/models/{MODEL_NAME}:predict", timeout=10)
    assert response.status_code == 405
    assert "POST" in response.json()["error"]


def test_a_body_over_the_limit_is_413_and_the_server_keeps_serving(server, samples):
    oversized = b'{"instances": [' + b"1," * 600_000 + b"1]}"
    response = requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", data=oversized, timeout=30)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert predict(server, {"instances": [b64(samples[0][0])]}).status_code == 200


def test_concurrent_requests_are_batched(server, samples):
    encoded, _ = samples
    before = _batch_stats(server)
    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(lambda e: predict(server, {"instances": [b64(e)]}), encoded * 8))
    assert all(r.status_code == 200 for r in responses)
    after = _batch_stats(server)
    rows, batches = after[0] - before[0], after[1] - before[1]
    assert rows == len(responses)
    assert batches < len(responses), "48 concurrent requests never shared a model call"


def _batch_stats(server: str) -> tuple[float, float]:
    text = requests.get(f"{server}/metrics", timeout=10).text
    rows = float(re.search(r"^cloudai_batch_size_sum\{[^}]*\} (\S+)$", text, re.M).group(1))
    batches = float(re.search(r"^cloudai_batch_size_count\{[^}]*\} (\S+)$", text, re.M).group(1))
    return rows, batches


def test_metrics_count_requests_errors_and_the_loaded_version(server, samples):
    predict(server, {"instances": [b64(samples[0][0])]})
    requests.post(f"{server}/v1/models/{MODEL_NAME}:predict", data=b"{", timeout=10)
    response = requests.get(f"{server}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert re.search(r'^cloudai_requests_total\{endpoint="predict",code="200"\} [1-9]', text, re.M)
    assert re.search(r'^cloudai_request_errors_total\{endpoint="predict",kind="client"\} [1-9]', text, re.M)
    assert re.search(
        r'^cloudai_request_latency_seconds_bucket\{endpoint="predict",le="\+Inf"\} [1-9]', text, re.M
    )
    assert f'cloudai_model_version{{model="{MODEL_NAME}"}} 1' in text


def test_health_readiness_and_openapi(server):
    assert requests.get(f"{server}/healthz", timeout=10).status_code == 200
    assert requests.get(f"{server}/readyz", timeout=10).status_code == 200
    spec = requests.get(f"{server}/openapi.json", timeout=10).json()
    from openapi_spec_validator import validate

    validate(spec)
    assert "/v1/models/{name}:predict" in spec["paths"]
    assert "/v1/models/{name}/versions/{version}:classify" in spec["paths"]


def test_not_ready_until_a_version_appears_then_serves_it(tmp_path, version_folder, samples):
    store_url = f"file://{tmp_path / 'store'}"
    with serve_process(store_url, "--poll-seconds=0.3", ready=False) as url:
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 503
        waiting = predict(url, {"instances": [b64(samples[0][0])]})
        assert waiting.status_code == 404
        assert waiting.json() == {"error": f"Servable not found for request: Latest({MODEL_NAME})"}
        ModelStore(store_url).publish_version(MODEL_NAME, version_folder)
        _wait_for(lambda: requests.get(f"{url}/readyz", timeout=10).status_code == 200)
        assert predict(url, {"instances": [b64(samples[0][0])]}).status_code == 200


@pytest.mark.slow
def test_a_new_version_is_swapped_in_without_a_failed_request(tmp_path, version_folder, samples):
    store_url = new_store(tmp_path / "store", version_folder)
    encoded, _ = samples
    with serve_process(store_url, "--poll-seconds=0.3") as url:
        failures: list[str] = []
        answered = 0
        stop = threading.Event()

        def keep_predicting() -> None:
            nonlocal answered
            session = requests.Session()
            while not stop.is_set():
                response = session.post(
                    f"{url}/v1/models/{MODEL_NAME}:predict", json={"instances": [b64(encoded[0])]}
                )
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text}")
                answered += 1

        clients = [threading.Thread(target=keep_predicting) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            time.sleep(1)
            incomplete = Path(ModelStore(store_url).root) / "models" / MODEL_NAME / "9"
            incomplete.mkdir()
            (incomplete / "saved_model.pb").write_bytes((version_folder / "saved_model.pb").read_bytes())
            assert ModelStore(store_url).publish_version(MODEL_NAME, version_folder) == 10
            _wait_for(lambda: _served_version(url) == "10")
            time.sleep(1)
        finally:
            stop.set()
            for client in clients:
                client.join()
        assert failures == []
        assert answered > 20
        assert _served_version(url) == "10"  # never the incomplete 9
        assert requests.get(f"{url}/v1/models/{MODEL_NAME}/versions/9", timeout=10).status_code == 404
        old = predict(url, {"instances": [b64(encoded[0])]}, f"/v1/models/{MODEL_NAME}/versions/1:predict")
        assert old.status_code == 200


def _served_version(url: str) -> str:
    document = requests.get(f"{url}/v1/models/{MODEL_NAME}/metadata", timeout=10).json()
    return document["model_spec"]["version"]


def _wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.1)
