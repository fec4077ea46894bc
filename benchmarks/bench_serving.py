"""Serving benchmarks: batching server vs. one-call-per-request, against the model's own batching ceiling.

A server can only gain from batching what the model itself gains, so each model's in-process throughput
at batch 1 and at the max batch size is measured in the same run; the server's gain over the naive
server is reported next to that ceiling. Two untrained models (throughput does not depend on weights):
mobilenet_v2 at 96 px, whose compute dominates, and small-cnn at 32 px (what `cloud-ai quickstart`
ships for CPUs), where per-request overhead dominates. Cold start and soak run once, on mobilenet_v2:
the larger artifact is the worse case for loading and for memory. Clients send b64 PNGs to the server
in its own process over 127.0.0.1: wrk (C) for the throughput runs, so that on two shared cores the
load generator takes as little as possible of the server's CPU; the soak, which counts every request
and error, is a Python client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import numpy as np

from benchmarks.report import table, write_section

MODEL_NAME = "bench"
CLIENTS = 32
MAX_BATCH = CLIENTS
IN_PROCESS_SECONDS = 6.0
IN_PROCESS_ROUNDS = 2
WARM_UP_SECONDS = 3.0
LOAD_SECONDS = 10.0
SOAK_REQUESTS = 20_000
SOAK_CONCURRENCY = 64
GAIN_TARGET = 5.0
EFFICIENCY_TARGET = 0.85
REPO = Path(__file__).resolve().parents[1]

Run = dict[str, float]


@dataclass(frozen=True)
class Subject:
    """A model under test: its backbone and input size."""

    backbone: str
    image_size: int

    @property
    def label(self) -> str:
        return f"{self.backbone} {self.image_size} px"


SUBJECTS = (Subject("mobilenet_v2", 96), Subject("small-cnn", 32))
SOAK_SUBJECT = SUBJECTS[0]


@dataclass(frozen=True)
class Comparison:
    """One model's in-process and served throughput, measured back to back."""

    subject: Subject
    batch1: float
    batched: float
    server: Run
    naive: Run

    @property
    def ceiling(self) -> float:
        """What batching can give at most: the model's own batched / batch-1 throughput."""
        return self.batched / self.batch1

    @property
    def gain(self) -> float:
        return self.server["throughput"] / self.naive["throughput"]

    @property
    def fraction(self) -> float:
        return self.gain / self.ceiling

    @property
    def efficiency(self) -> float:
        """Batching server / in-process batched throughput: what HTTP, decoding and queueing cost."""
        return self.server["throughput"] / self.batched


@dataclass(frozen=True)
class Soak:
    run: Run
    rss_before_mb: float
    rss_after_mb: float

    @property
    def growth(self) -> float:
        return self.rss_after_mb / self.rss_before_mb - 1


def export_bench_model(store_url: str, subject: Subject) -> Path:
    """SUBJECT untrained, exported as version 1 (SavedModel + TFLite) into STORE_URL."""
    from workload.export import export_model
    from workload.model import build_model

    model = build_model(subject.backbone, 10, subject.image_size, weights="none")
    export_model(model, [str(i) for i in range(10)], subject.image_size, store_url, MODEL_NAME, {}, {})
    return Path(store_url.removeprefix("file://")) / "models" / MODEL_NAME / "1"


def in_process_throughputs(version_dir: Path, image_size: int) -> tuple[float, float]:
    """Images/s of the SavedModel called directly at batch 1 and at MAX_BATCH.

    Best of IN_PROCESS_ROUNDS alternating rounds: the CPUs are shared, and alternating keeps a burst of
    someone else's load from landing on one batch size only and skewing the ceiling.
    """
    from workload.serve import SavedModelVersion

    model = SavedModelVersion(1, version_dir)
    rng = np.random.default_rng(0)
    batches = [rng.uniform(0, 255, (n, image_size, image_size, 3)).astype(np.float32) for n in (1, MAX_BATCH)]
    best = [0.0, 0.0]
    for _ in range(IN_PROCESS_ROUNDS):
        for i, batch in enumerate(batches):
            best[i] = max(best[i], _images_per_second(model.predict, batch))
    return best[0], best[1]


def _images_per_second(predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray) -> float:
    predict(batch)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < IN_PROCESS_SECONDS:
        predict(batch)
        images += len(batch)
    return images / (time.perf_counter() - started)


def png_body(image_size: int) -> bytes:
    from workload.images import encode_png

    pixels = np.random.default_rng(1).uniform(0, 255, (image_size, image_size, 3))
    return json.dumps({"instances": [{"b64": base64.b64encode(encode_png(pixels)).decode()}]}).encode()


async def load(url: str, body: bytes, concurrency: int, requests: int | None, seconds: float | None) -> Run:
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


def measure(url: str, body: bytes) -> Run:
    """CLIENTS closed-loop wrk connections for LOAD_SECONDS, after a warm-up that is not counted."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("bench serving needs wrk: `apt-get install wrk` (make bench installs it)")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        script = Path(folder) / "predict.lua"
        (Path(folder) / "body.json").write_bytes(body)
        script.write_text(WRK_SCRIPT.replace("BODY", str(Path(folder) / "body.json")))
        command = [wrk, "--threads=1", f"--connections={CLIENTS}", "--latency", f"--script={script}"]
        target = f"{url}/v1/models/{MODEL_NAME}:predict"
        for seconds in (WARM_UP_SECONDS, LOAD_SECONDS):
            done = subprocess.run(
                [*command, f"--duration={seconds:.0f}s", target], capture_output=True, text=True, check=True
            )
    return parse_wrk(done.stdout)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = io.open("BODY", "rb")
wrk.body = file:read("*a")
file:close()
"""
WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(report: str) -> Run:
    """requests, errors, throughput and p50/p99 (ms) from wrk's `--latency` report."""

    def percentile(share: str) -> float:
        found = re.search(rf"^\s+{share}%\s+([\d.]+)(us|ms|s)$", report, re.MULTILINE)
        if found is None:
            raise ValueError(f"no {share}th percentile in wrk's report:\n{report}")
        return float(found[1]) * WRK_UNITS_MS[found[2]]

    requests = re.search(r"(\d+) requests in", report)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    if requests is None or rate is None:
        raise ValueError(f"not a wrk report:\n{report}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return {
        "requests": int(requests[1]),
        "errors": errors,
        "throughput": float(rate[1]),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
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

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 120
        while not self._ready():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the server did not become ready")
            time.sleep(0.2)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def mean_batch_size(self) -> float:
        """Rows per model call so far, from the server's own /metrics (warm-up included)."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        totals = dict(re.findall(r"^cloudai_batch_size_(sum|count)\{[^}]*\} ([\d.]+)$", text, re.MULTILINE))
        return float(totals["sum"]) / float(totals["count"])

    def rss_mb(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/status").read_text().split("VmRSS:")[1].split()
        return int(fields[0]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def batching_server(store_url: str) -> Server:
    return Server(store_url, f"--max-batch-size={MAX_BATCH}", "--batch-timeout-ms=2")


def naive_server(store_url: str) -> Server:
    return Server(store_url, "--max-batch-size=1", "--batch-timeout-ms=0")


def soak(server: Server, body: bytes) -> Soak:
    """SOAK_REQUESTS at SOAK_CONCURRENCY on an already warm server, with its RSS before and after."""
    before = server.rss_mb()
    run = asyncio.run(load(server.url, body, SOAK_CONCURRENCY, SOAK_REQUESTS, None))
    return Soak(run, before, server.rss_mb())


def compare(subject: Subject, store_url: str, body: bytes) -> tuple[Comparison, Soak | None]:
    """In-process batch 1 and batch MAX_BATCH, then the batching and the naive server, for SUBJECT."""
    version_dir = export_bench_model(store_url, subject)
    batch1, batched = in_process_throughputs(version_dir, subject.image_size)
    with batching_server(store_url) as server:
        served = {**measure(server.url, body), "mean_batch": server.mean_batch_size()}
        soaked = soak(server, body) if subject == SOAK_SUBJECT else None
    with naive_server(store_url) as server:
        naive = measure(server.url, body)
    return Comparison(subject, batch1, batched, served, naive), soaked


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
    comparisons: list[Comparison] = []
    soaked: Soak | None = None
    for subject in SUBJECTS:
        store_url = f"file://{workdir / subject.backbone}"
        body = png_body(subject.image_size)
        (workdir / f"{subject.backbone}.json").write_bytes(body)
        comparison, subject_soak = compare(subject, store_url, body)
        comparisons.append(comparison)
        soaked = soaked or subject_soak
    assert soaked is not None

    env = {"MODEL_STORE": f"file://{workdir / SOAK_SUBJECT.backbone}", "MODEL_NAME": MODEL_NAME}
    body_path = str(workdir / f"{SOAK_SUBJECT.backbone}.json")
    version_dir = workdir / SOAK_SUBJECT.backbone / "models" / MODEL_NAME / "1"
    tflite_cold = cold_start_seconds(TFLITE_FIRST_ANSWER.replace("BODY", body_path), env)
    tf_cold = cold_start_seconds(
        TF_FIRST_ANSWER.replace("BODY", body_path).replace("VERSION", str(version_dir)), env
    )
    report(comparisons, soaked, tflite_cold, tf_cold)


def report(comparisons: list[Comparison], soaked: Soak, tflite_cold: float, tf_cold: float) -> None:
    markdown = "\n\n".join(
        [
            "## Serving",
            f"Untrained models, one b64 PNG per request, {CLIENTS} closed-loop wrk connections over "
            "127.0.0.1 against the server in its own process, `python -m benchmarks serving`. wrk is C, so "
            "the load generator takes little of the two cores the server runs on; the soak, which counts "
            "every request, uses a Python client. A server can gain "
            "from batching at most what the model gains itself, so each model's in-process throughput "
            f"at batch 1 and at batch {MAX_BATCH} is measured in the same run: their ratio is the "
            "**ceiling** for the server's **gain** (batching server / naive one-call-per-request server).",
            table(["measure", "result", "target", ""], _target_rows(comparisons, soaked, tflite_cold)),
            "\n".join(_judgement(c) for c in comparisons),
            table(
                [
                    "model",
                    "in-process batch 1",
                    f"in-process batch {MAX_BATCH}",
                    "ceiling",
                    "batching server",
                    "naive server",
                    "gain",
                    "fraction of ceiling",
                    "server's mean batch",
                ],
                [_ceiling_row(c) for c in comparisons],
            ),
            table(["run", "images/s", "p50 ms", "p99 ms"], _latency_rows(comparisons, soaked)),
            f"Throughputs in images/s. In-process: best of {IN_PROCESS_ROUNDS} alternating "
            f"{IN_PROCESS_SECONDS:.0f} s windows per batch size; servers: {LOAD_SECONDS:.0f} s after "
            f"{WARM_UP_SECONDS:.0f} s of warm-up. The cores were shared with other work, so absolute numbers "
            "move from run to run. Cold start and soak run on "
            f"{SOAK_SUBJECT.label}, the larger artifact and so the worse case for loading and memory. "
            f"Cold start to first answer: TFLite function predictor {tflite_cold:.2f} s, full-TensorFlow "
            f"predictor {tf_cold:.2f} s (median of 3, empty local cache). "
            f"Soak RSS {soaked.rss_before_mb:.0f} MB -> {soaked.rss_after_mb:.0f} MB.",
        ]
    )
    results: dict[str, Any] = {
        "models": {c.subject.label: _comparison_results(c) for c in comparisons},
        "soak_model": SOAK_SUBJECT.label,
        "soak": soaked.run,
        "soak_rss_mb": [soaked.rss_before_mb, soaked.rss_after_mb],
        "cold_start_tflite_s": tflite_cold,
        "cold_start_tensorflow_s": tf_cold,
    }
    write_section("serving", markdown, results)
    print(markdown)


def _target_rows(comparisons: list[Comparison], soaked: Soak, tflite_cold: float) -> list[list[str]]:
    rows = []
    for c in comparisons:
        gain_verdict = _verdict(c.gain >= GAIN_TARGET)
        if c.gain < GAIN_TARGET and c.ceiling < GAIN_TARGET:
            gain_verdict += f" (ceiling {c.ceiling:.1f}x)"
        rows += [
            [
                f"{c.subject.label}: batching / naive server",
                f"{c.gain:.1f}x",
                f">= {GAIN_TARGET:.0f}x",
                gain_verdict,
            ],
            [
                f"{c.subject.label}: server / in-process batch {MAX_BATCH}",
                f"{c.efficiency:.2f}",
                f">= {EFFICIENCY_TARGET}",
                _verdict(c.efficiency >= EFFICIENCY_TARGET),
            ],
        ]
    errors = int(soaked.run["errors"])
    return [
        *rows,
        ["TFLite function cold start", f"{tflite_cold:.2f} s", "<= 1.5 s", _verdict(tflite_cold <= 1.5)],
        ["soak errors", str(errors), "0", _verdict(errors == 0)],
        ["soak RSS growth after warm-up", f"{soaked.growth:.1%}", "< 10%", _verdict(soaked.growth < 0.10)],
    ]


def _judgement(c: Comparison) -> str:
    """One sentence per model saying whether it meets the gain target and, if not, whether it could."""
    achieved = f"{c.gain:.1f}x, {c.fraction:.0%} of its {c.ceiling:.1f}x ceiling"
    if c.gain >= GAIN_TARGET:
        return f"- **{c.subject.label} meets** the {GAIN_TARGET:.0f}x target: {achieved}."
    if c.ceiling < GAIN_TARGET:
        return (
            f"- **{c.subject.label} cannot meet** the {GAIN_TARGET:.0f}x target on this machine: the model "
            f"itself runs only {c.ceiling:.1f}x faster at batch {MAX_BATCH} than at batch 1, so no server "
            f"can batch it to {GAIN_TARGET:.0f}x; its server gains {c.gain:.1f}x, {c.fraction:.0%} of that."
        )
    return (
        f"- **{c.subject.label} misses** the {GAIN_TARGET:.0f}x target, which its ceiling allows: {achieved}."
    )


def _ceiling_row(c: Comparison) -> list[str]:
    return [
        c.subject.label,
        f"{c.batch1:.0f}",
        f"{c.batched:.0f}",
        f"{c.ceiling:.1f}x",
        f"{c.server['throughput']:.0f}",
        f"{c.naive['throughput']:.0f}",
        f"{c.gain:.1f}x",
        f"{c.fraction:.0%}",
        f"{c.server['mean_batch']:.1f}",
    ]


def _latency_rows(comparisons: list[Comparison], soaked: Soak) -> list[list[str]]:
    rows = []
    for c in comparisons:
        rows += [
            _latency_row(f"{c.subject.label}: batching server, {CLIENTS} clients", c.server),
            _latency_row(f"{c.subject.label}: naive server, {CLIENTS} clients", c.naive),
        ]
    soak_name = f"{SOAK_SUBJECT.label}: soak, {SOAK_REQUESTS} requests at {SOAK_CONCURRENCY}"
    return [*rows, _latency_row(soak_name, soaked.run)]


def _comparison_results(c: Comparison) -> dict[str, Any]:
    return {
        "in_process_batch_1_images_per_s": c.batch1,
        f"in_process_batch_{MAX_BATCH}_images_per_s": c.batched,
        "batching": c.server,
        "naive": c.naive,
        "ceiling": c.ceiling,
        "gain": c.gain,
        "fraction_of_ceiling": c.fraction,
        "ratio_vs_in_process": c.efficiency,
    }


def _latency_row(name: str, run: Run) -> list[str]:
    return [name, f"{run['throughput']:.0f}", f"{run['p50_ms']:.1f}", f"{run['p99_ms']:.1f}"]


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    main()
