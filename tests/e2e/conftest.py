"""Real containers for the e2e tests: the engine, the images (built offline), and containers that are
always removed.

No image registry is reachable here, so the images are built by scripts/build-images.sh from a local
debootstrap base and a host wheelhouse; the first build takes minutes, later ones reuse the layer cache.
If no Docker engine can be started, every test that needs one fails with the reason, never skips.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Debian's client speaks the Debian engine's API and drives its built-in BuildKit (see ensure-docker.sh).
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
TARGETS = ("train", "serve", "function-gcp", "function-aws", "function-azure")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """A running engine, started by scripts/ensure-docker.sh (installs docker.io when missing)."""
    result = subprocess.run(
        [str(REPO / "scripts/ensure-docker.sh")], capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        pytest.fail(
            "the container tests need a Docker engine and none could be started:\n"
            + (result.stderr or result.stdout)[-3000:],
            pytrace=False,
        )
    return DOCKER


# Target -> the tag scripts/build-images.sh gives it (the trainer in its CPU variant).
IMAGES = {target: f"cloud-ai/{target}:latest" for target in TARGETS} | {"train": "cloud-ai/train:cpu"}


@pytest.fixture(scope="session")
def images(docker_engine: str) -> dict[str, str]:
    """Every target built (the trainer in its CPU variant) from the current sources."""
    result = subprocess.run(
        [str(REPO / "scripts/build-images.sh"), *TARGETS],
        env={**os.environ, "TRAIN_VARIANT": "cpu"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        pytest.fail(f"building the images failed:\n{result.stderr[-5000:]}", pytrace=False)
    return IMAGES


@dataclass
class Containers:
    """Starts containers with unique names and removes every one of them at the end of the session."""

    started: list[str] = field(default_factory=list)

    def run(
        self,
        image: str,
        *args: str,
        env: dict[str, str] | None = None,
        volumes: dict[Path, str] | None = None,
        ports: tuple[int, ...] = (),
        options: tuple[str, ...] = (),
        detach: bool = True,
        timeout: float = 600,
    ) -> tuple[str, subprocess.CompletedProcess]:
        name = f"cloud-ai-test-{uuid.uuid4().hex[:10]}"
        self.started.append(name)
        command = ["run", "--name", name, *options]
        command += ["--detach"] if detach else []
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        for host, inside in (volumes or {}).items():
            command += ["--volume", f"{host}:{inside}"]
        for port in ports:
            command += ["--publish", f"127.0.0.1::{port}"]  # loopback only, a free host port
        return name, docker(*command, image, *args, timeout=timeout, check=False)

    def url(self, name: str, port: int) -> str:
        """http://127.0.0.1:PORT where the container's PORT is published."""
        published = docker("port", name, f"{port}/tcp").stdout.split()[0]
        return f"http://{published}"

    def logs(self, name: str) -> str:
        result = docker("logs", name, check=False)
        return result.stdout + result.stderr

    def exit_code(self, name: str, timeout: float = 300) -> int:
        return int(docker("wait", name, timeout=timeout).stdout.strip())

    def wait_for_log(self, name: str, text: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.logs(name):
                return
            state = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if state != "true":
                raise AssertionError(f"{name} stopped before logging {text!r}:\n{self.logs(name)[-3000:]}")
            time.sleep(1)
        logs = self.logs(name)[-3000:]
        raise AssertionError(f"{name} did not log {text!r} within {timeout:.0f} s:\n{logs}")

    def remove_all(self) -> None:
        if self.started:
            docker("rm", "--force", "--volumes", *self.started, check=False)


@pytest.fixture(scope="session")
def containers(docker_engine: str) -> Iterator[Containers]:
    running = Containers()
    try:
        yield running
    finally:
        running.remove_all()
