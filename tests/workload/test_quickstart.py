"""`cloud-ai quickstart` end to end, as `make demo` runs it on a machine with no cloud."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import run_cli
from tests.emulators import free_port
from workload.store import ModelStore


@pytest.mark.slow
def test_quickstart_trains_serves_classifies_and_stops(tmp_path):
    port = free_port()
    result = run_cli("quickstart", f"--workdir={tmp_path}", f"--port={port}", timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "held 30 images out of training" in result.stdout
    right = re.search(r"classified the 30 held-out images over HTTP: (\d+) right", result.stdout)
    assert right, result.stdout
    assert int(right.group(1)) >= 24, "the demo model should get at least 80% of unseen digits right"
    assert f"http://127.0.0.1:{port}/v1/models/digits:classify" in result.stdout  # the curl to try
    assert "server stopped" in result.stdout
    assert ModelStore(f"file://{tmp_path / 'store'}").latest_version("digits") == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
