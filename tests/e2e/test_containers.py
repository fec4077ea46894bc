"""The workload images, really built and run: train into a host-mounted store, serve it over HTTP,
answer from the function images, and the container contracts (signals, env, user, size).

The trainer runs in its CPU variant (the GPU one is the same Dockerfile stage on tensorflow[and-cuda]).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import REPO, Containers, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MODEL = "digits"
# What the trainer instances' startup script passes with `docker run -e` (infra/launch.py).
TRAIN_ENV = {
    "MODEL_STORE": "/store",
    "DATASET": "digits",
    "MODEL_NAME": MODEL,
    "BACKBONE": "small-cnn",
    "IMAGE_SIZE": "32",
    "EPOCHS": "3",
    "WEIGHTS": "none",
}
EXPLICIT_EPOCHS = 2  # passed as an argument: it must win over EPOCHS above
FUNCTION_SIZE_LIMIT = 500e6
SERVE_SIZE_LIMIT = 2.5e9
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:cloud-ai-test"


@pytest.fixture(scope="session")
def trained_store(
    images: dict[str, str], containers: Containers, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A file store with the sample digits, and version 1 trained by the train container."""
    store = tmp_path_factory.mktemp("container-store")
    subprocess.run(
        [sys.executable, "-m", "workload", "sample-data", str(store / "datasets" / "digits")],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The containers run as an unprivileged user, the store belongs to whoever runs the tests.
    for folder, dirs, files in os.walk(store):
        for entry in [folder, *(os.path.join(folder, name) for name in dirs + files)]:
            os.chmod(entry, 0o777 if os.path.isdir(entry) else 0o666)
    name, result = containers.run(
        images["train"],
        "--epochs",
        str(EXPLICIT_EPOCHS),
        env=TRAIN_ENV,
        volumes={store: "/store"},
        detach=False,
    )
    assert result.returncode == 0, f"training in the container failed:\n{containers.logs(name)[-5000:]}"
    return store


@pytest.fixture(scope="session")
def samples(trained_store: Path) -> list[tuple[str, bytes]]:
    """One PNG per class: (class name, bytes)."""
    root = trained_store / "datasets" / "digits"
    return [(d.name, sorted(d.iterdir())[0].read_bytes()) for d in sorted(root.iterdir())]


def classify_body(samples: list[tuple[str, bytes]]) -> dict[str, Any]:
    return {"examples": [{"image": {"b64": base64.b64encode(png).decode()}} for _, png in samples]}


def top_labels(document: dict[str, Any]) -> list[str]:
    return [ranking[0][0] for ranking in document["results"]]


def wait_until_answers(url: str, timeout: float = 120) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.fixture(scope="session")
def serve_url(images: dict[str, str], containers: Containers, trained_store: Path) -> str:
    """The serve container on the trained store (read-only), healthy by its own HEALTHCHECK."""
    name, result = containers.run(
        images["serve"],
        env={"MODEL_STORE": "/store", "MODEL_NAME": MODEL},
        volumes={trained_store: "/store:ro"},
        ports=(8501,),
        options=("--health-interval", "2s", "--health-start-period", "120s"),
    )
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 180
    health = ""
    while time.monotonic() < deadline and health != "healthy":
        health = docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
        if docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(1)
    assert health == "healthy", f"serve container is {health!r}:\n{containers.logs(name)[-3000:]}"
    # /healthz (the HEALTHCHECK) is liveness; /readyz turns 200 once a model version is loaded.
    url = containers.url(name, 8501)
    deadline = time.monotonic() + 180
    while requests.get(f"{url}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"no model became ready:\n{containers.logs(name)[-3000:]}"
        time.sleep(1)
    return url


def test_train_container_exports_a_version_into_the_host_store(trained_store: Path) -> None:
    version = trained_store / "models" / MODEL / "1"
    for part in ("saved_model.pb", "variables", "model.tflite", "labels.txt", "metadata.json"):
        assert (version / part).exists(), f"{part} missing from {version}"
    metadata = json.loads((version / "metadata.json").read_text())
    # From the environment (BACKBONE, WEIGHTS), except what the explicit argument overrode (EPOCHS).
    assert (metadata["backbone"], metadata["weights"]) == ("small-cnn", "none")
    assert metadata["epochs"] == EXPLICIT_EPOCHS
    assert (version / "labels.txt").read_text().split() == [str(d) for d in range(10)]


def test_train_container_hands_the_trainer_sigterm_and_returns_its_preempted_status(
    images: dict[str, str], containers: Containers, trained_store: Path
) -> None:
    name, result = containers.run(
        images["train"],
        env={**TRAIN_ENV, "MODEL_NAME": "preempted", "EPOCHS": "500"},
        volumes={trained_store: "/store"},
    )
    assert result.returncode == 0, result.stderr
    containers.wait_for_log(name, "validation images")  # the trainer is up, its SIGTERM handler installed
    docker("stop", "--time", "120", name, timeout=180)  # SIGTERM to PID 1, as a spot reclaim does
    logs = containers.logs(name)
    assert containers.exit_code(name) == 75, f"expected 75 (preempted):\n{logs[-3000:]}"
    assert "preempted" in logs
    assert any((trained_store / "checkpoints" / "preempted").iterdir()), "no training state was saved"


def test_serve_container_classifies_over_http(serve_url: str, samples: list[tuple[str, bytes]]) -> None:
    status = requests.get(f"{serve_url}/v1/models/{MODEL}", timeout=10)
    assert status.status_code == 200
    assert status.json()["model_version_status"][0]["version"] == "1"

    reply = requests.post(f"{serve_url}/v1/models/{MODEL}:classify", json=classify_body(samples), timeout=60)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert len(results) == len(samples)
    for ranking in results:
        scores = [score for _, score in ranking]
        assert {label for label, _ in ranking} <= {str(d) for d in range(10)}
        assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1

    missing = requests.get(f"{serve_url}/v1/models/no-such-model", timeout=10)
    assert missing.status_code == 404 and "error" in missing.json()


def test_function_gcp_container_answers_like_serve(
    images: dict[str, str],
    containers: Containers,
    trained_store: Path,
    serve_url: str,
    samples: list[tuple[str, bytes]],
) -> None:
    name, result = containers.run(
        images["function-gcp"],
        env={"MODEL_STORE": "/store", "MODEL_NAME": MODEL},
        volumes={trained_store: "/store:ro"},
        ports=(8080,),
    )
    assert result.returncode == 0, result.stderr
    url = containers.url(name, 8080)
    assert wait_until_answers(url).status_code == 200, containers.logs(name)[-3000:]

    reply = requests.post(url, json=classify_body(samples), timeout=60)
    assert reply.status_code == 200, reply.text
    served = requests.post(f"{serve_url}/v1/models/{MODEL}:classify", json=classify_body(samples), timeout=60)
    # The same model, as TFLite in the function and as a SavedModel in serve: the same answers.
    assert top_labels(reply.json()) == top_labels(served.json())


class FakeLambdaRuntime(ThreadingHTTPServer):
    """The Lambda Runtime API (2018-06-01) as the service speaks it, for one invocation: hands EVENT to
    the first `next` poll and records what the runtime posts back; later polls wait until the end."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self.responses: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.delivered = threading.Event()
        self.closing = threading.Event()
        super().__init__(("127.0.0.1", 0), _RuntimeHandler)


class _RuntimeHandler(BaseHTTPRequestHandler):
    server: FakeLambdaRuntime

    def do_GET(self) -> None:
        if self.path != "/2018-06-01/runtime/invocation/next":
            self.send_error(404)
            return
        if self.server.delivered.is_set():  # one invocation only: hold the next poll until the end
            self.server.closing.wait(300)
            self.send_error(503)
            return
        self.server.delivered.set()
        body = json.dumps(self.server.event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "request-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN)
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
        # awslambdaric 4.2 segfaults on a `next` reply without these two, which the service always sends.
        self.send_header("Lambda-Runtime-Invocation-Id", "invocation-1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.responses.put((self.path, json.loads(body or b"null")))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture
def lambda_runtime(samples: list[tuple[str, bytes]]) -> Iterator[FakeLambdaRuntime]:
    event = {  # a Function URL request (payload format 2.0)
        "version": "2.0",
        "rawPath": f"/v1/models/{MODEL}:classify",
        "requestContext": {"http": {"method": "POST", "path": f"/v1/models/{MODEL}:classify"}},
        "headers": {"content-type": "application/json"},
        "body": json.dumps(classify_body(samples)),
        "isBase64Encoded": False,
    }
    server = FakeLambdaRuntime(event)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()


def test_function_aws_container_answers_an_invocation_through_the_runtime_api(
    images: dict[str, str],
    containers: Containers,
    trained_store: Path,
    serve_url: str,
    samples: list[tuple[str, bytes]],
    lambda_runtime: FakeLambdaRuntime,
) -> None:
    port = lambda_runtime.server_address[1]
    name, result = containers.run(
        images["function-aws"],
        env={"MODEL_STORE": "/store", "MODEL_NAME": MODEL, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"},
        volumes={trained_store: "/store:ro"},
        options=("--network", "host"),  # the runtime API listens on the host's loopback
    )
    assert result.returncode == 0, result.stderr
    try:
        path, response = lambda_runtime.responses.get(timeout=120)
    except queue.Empty:
        pytest.fail(f"the Lambda container answered nothing:\n{containers.logs(name)[-3000:]}")
    assert path == "/2018-06-01/runtime/invocation/request-1/response", (path, response)
    assert response["statusCode"] == 200, response
    served = requests.post(f"{serve_url}/v1/models/{MODEL}:classify", json=classify_body(samples), timeout=60)
    assert top_labels(json.loads(response["body"])) == top_labels(served.json())


def test_function_azure_image_holds_the_app_where_the_functions_host_loads_it(images: dict[str, str]) -> None:
    # The Functions host itself is only in Microsoft's base image (no registry here): check the app's
    # layout and that function_app imports with the packages from .python_packages, as the worker does.
    root = "/home/site/wwwroot"
    script = (
        f"import sys; sys.path[:0] = ['{root}', '{root}/.python_packages/lib/site-packages']; "
        "import function_app; print(type(function_app.app).__name__)"
    )
    result = docker(
        "run", "--rm", "--entrypoint", "sh", images["function-azure"], "-c",
        f'test -f {root}/host.json && test "$AzureWebJobsScriptRoot" = {root} && python3 -c "{script}"',
    )  # fmt: skip
    assert "FunctionApp" in result.stdout, result.stdout + result.stderr


def test_images_are_unprivileged_without_installers_and_within_size_budgets(images: dict[str, str]) -> None:
    for target, image in images.items():
        facts = docker("image", "inspect", "--format", "{{.Config.User}} {{.Size}}", image).stdout
        user, size = facts.split()
        assert user == "10001:10001", f"{target} runs as {user!r}"
        if target.startswith("function"):
            assert int(size) < FUNCTION_SIZE_LIMIT, f"{target}: {int(size) / 1e6:.0f} MB"
        if target == "serve":
            assert int(size) < SERVE_SIZE_LIMIT, f"{target}: {int(size) / 1e6:.0f} MB"
        if target != "function-azure":  # the Azure base image brings its own pip
            check = "! command -v gcc && ! test -e /opt/venv/bin/pip && ! test -e /root/.cache/pip"
            docker("run", "--rm", "--user", "0", "--entrypoint", "sh", image, "-c", check)
