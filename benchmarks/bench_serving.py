"""Serving benchmarks: batching server vs. in-process model and vs. one-call-per-request, cold start, soak.

All ratios are against baselines measured in the same run on the same machine. The model is
mobilenet_v2 (untrained weights: throughput does not depend on them) at 96 px, exported as a real
version; clients send b64 PNGs from another process over 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from benchmarks.report import table, write_section

MODEL_NAME = "bench"
IMAGE_SIZE = 96
CLIENTS = 32
SOAK_REQUESTS = 20_000
SOAK_CONCURRENCY = 64
REPO = Path(__file__).resolve().parents[1]


def export_bench_model(store_url: str) -> Path:
    """An untrained mobilenet_v2 exported as version 1 (SavedModel + TFLite) into STORE_URL."""
    from workload.export import export_model
    from workload.model import build_model

    model = build_model("mobilenet_v2", 10, IMAGE_SIZE, weights="none")
    export_model(model, [str(i) for i in range(10)], IMAGE_SIZE, store_url, MODEL_NAME, {}, {})
    return Path(store_url.removeprefix("file://")) / "models" / MODEL_NAME / "1"


def in_process_throughput(version_dir: Path, batch_size: int, seconds: float = 8.0) -> float:
    """Images per second of the SavedModel called directly with full batches: the ceiling for the server."""
    from workload.serve import SavedModelVersion

    model = SavedModelVersion(1, version_dir)
    batch = (
        np.random.default_rng(0).uniform(0, 255, (batch_size, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    )
    model.predict(batch)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(batch)
        images += batch_size
    return images / (time.perf_counter() - started)


def png_body() -> bytes:
    from workload.images import encode_png

    pixels = np.random.default_rng(1).uniform(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3))
    return json.dumps({"instances": [{"b64": base64.b64encode(encode_png(pixels)).decode()}]}).encode()


async def load(url: str, body: bytes, concurrency: int, requests: int | None, seconds: float | None) -> dict:
    """Closed-loop clients: each sends its next request when the previous answer arrives."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + (seconds or 1e9)
    remaining = [requests if requests is not None else 10**12]
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                started = time.perf_counter()
                async with session.post(f"{url}/v1/models/{MODEL_NAME}:predict", data=body) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p99_ms": 1000 * ordered[int(len(ordered) * 0.99)],
    }


class Server:
    """`cloud-ai serve` in its own process, so the load generator does not share its GIL."""

    def __init__(self, store_url: str, *options: str) -> None:
        from tests.emulators import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "workload", "serve", f"--model-store={store_url}"]
        command += [f"--model-name={MODEL_NAME}", f"--port={self.port}", *options]
        self.process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)

    def _ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def rss_mb(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/status").read_text().split("VmRSS:")[1].split()
        return int(fields[0]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def cold_start_seconds(command: str, env: dict[str, str], runs: int = 3) -> float:
    """Median wall time from process start to the first answer printed."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", command],
                cwd=REPO,
                env={**os.environ, **env, "CLOUD_AI_CACHE": cache},
                check=True,
            )
            times.append(time.perf_counter() - started)
    return statistics.median(times)


TFLITE_FIRST_ANSWER = """
import json
from workload.functions.aws import handler
event = {"rawPath": "/v1/models/bench:predict", "requestContext": {"http": {"method": "POST"}},
         "body": open("BODY").read(), "isBase64Encoded": False}
assert handler(event, None)["statusCode"] == 200
"""
TF_FIRST_ANSWER = """
import json
from pathlib import Path
from workload import api
from workload.serve import SavedModelVersion
model = SavedModelVersion(1, Path("VERSION"))
request = api.parse_predict(open("BODY", "rb").read(), model.signature)
json.dumps(api.predict_response(model.predict(request.images), False))
"""


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    store_url = f"file://{workdir / 'store'}"
    version_dir = export_bench_model(store_url)
    body = png_body()
    (workdir / "body.json").write_bytes(body)

    ceiling = in_process_throughput(version_dir, CLIENTS)
    batching = Server(store_url, f"--max-batch-size={CLIENTS}", "--batch-timeout-ms=2")
    try:
        asyncio.run(load(batching.url, body, CLIENTS, None, 3))  # warm-up
        batched = asyncio.run(load(batching.url, body, CLIENTS, None, 15))
        rss_before = batching.rss_mb()
        soak = asyncio.run(load(batching.url, body, SOAK_CONCURRENCY, SOAK_REQUESTS, None))
        rss_after = batching.rss_mb()
    finally:
        batching.stop()
    naive_server = Server(store_url, "--max-batch-size=1", "--batch-timeout-ms=0")
    try:
        asyncio.run(load(naive_server.url, body, CLIENTS, None, 3))
        naive = asyncio.run(load(naive_server.url, body, CLIENTS, None, 15))
    finally:
        naive_server.stop()

    env = {"MODEL_STORE": store_url, "MODEL_NAME": MODEL_NAME}
    body_path = str(workdir / "body.json")
    tflite_cold = cold_start_seconds(TFLITE_FIRST_ANSWER.replace("BODY", body_path), env)
    tf_cold = cold_start_seconds(
        TF_FIRST_ANSWER.replace("BODY", body_path).replace("VERSION", str(version_dir)), env
    )
    report(ceiling, batched, naive, soak, rss_before, rss_after, tflite_cold, tf_cold)


def report(
    ceiling: float,
    batched: dict,
    naive: dict,
    soak: dict,
    rss_before: float,
    rss_after: float,
    tflite_cold: float,
    tf_cold: float,
) -> None:
    vs_ceiling = batched["throughput"] / ceiling
    vs_naive = batched["throughput"] / naive["throughput"]
    growth = rss_after / rss_before - 1
    rows = [
        [
            "server / in-process batched throughput",
            f"{vs_ceiling:.2f}",
            ">= 0.85",
            _verdict(vs_ceiling >= 0.85),
        ],
        ["batching / naive server throughput", f"{vs_naive:.1f}x", ">= 5x", _verdict(vs_naive >= 5)],
        ["TFLite function cold start", f"{tflite_cold:.2f} s", "<= 1.5 s", _verdict(tflite_cold <= 1.5)],
        ["soak errors", str(soak["errors"]), "0", _verdict(soak["errors"] == 0)],
        ["soak RSS growth after warm-up", f"{growth:.1%}", "< 10%", _verdict(growth < 0.10)],
    ]
    details = [
        ["in-process (batch 32)", f"{ceiling:.0f}", "", ""],
        _latency_row("batching server, 32 clients", batched),
        _latency_row("naive server, 32 clients", naive),
        _latency_row(f"soak, {SOAK_REQUESTS} requests at {SOAK_CONCURRENCY}", soak),
    ]
    markdown = "\n\n".join(
        [
            "## Serving",
            f"mobilenet_v2 (untrained) at {IMAGE_SIZE} px, one b64 PNG per request, clients in another "
            "process over 127.0.0.1, `python -m benchmarks serving`.",
            table(["measure", "result", "target", ""], rows),
            table(["run", "images/s", "p50 ms", "p99 ms"], details),
            f"Cold start to first answer: TFLite function predictor {tflite_cold:.2f} s, "
            f"full-TensorFlow predictor {tf_cold:.2f} s (median of 3, empty local cache). "
            f"Soak RSS {rss_before:.0f} MB -> {rss_after:.0f} MB.",
        ]
    )
    results: dict[str, Any] = {
        "in_process_images_per_s": ceiling,
        "batching": batched,
        "naive": naive,
        "soak": soak,
        "ratio_vs_in_process": vs_ceiling,
        "ratio_vs_naive": vs_naive,
        "cold_start_tflite_s": tflite_cold,
        "cold_start_tensorflow_s": tf_cold,
        "soak_rss_mb": [rss_before, rss_after],
    }
    write_section("serving", markdown, results)
    print(markdown)


def _latency_row(name: str, run: dict) -> list[str]:
    return [name, f"{run['throughput']:.0f}", f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}"]


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    main()
