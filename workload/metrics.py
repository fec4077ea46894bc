"""The server's Prometheus metrics, rendered in the text exposition format (version 0.0.4).

Small on purpose: counters and histograms keyed by label values, no client library to ship.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


class Histogram:
    """Cumulative-bucket histogram of one labelled series."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def lines(self, name: str, labels: Labels) -> list[str]:
        cumulative, out = 0, []
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{name}_bucket{_render((*labels, ('le', le)))} {cumulative}")
        out.append(f"{name}_sum{_render(labels)} {self.total:.6f}")
        out.append(f"{name}_count{_render(labels)} {cumulative}")
        return out


class ServerMetrics:
    """Requests, errors, latency, batch sizes and the loaded version of one served model."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = defaultdict(int)
        self._errors: dict[Labels, int] = defaultdict(int)
        self._latency: dict[Labels, Histogram] = {}
        self._batches = Histogram(BATCH_SIZE_BUCKETS)
        self._version = 0

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        labels: Labels = (("endpoint", endpoint), ("code", str(status)))
        with self._lock:
            self._requests[labels] += 1
            if status >= 400:
                self._errors[(("endpoint", endpoint), ("kind", "client" if status < 500 else "server"))] += 1
            self._latency.setdefault((("endpoint", endpoint),), Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def observe_batch(self, rows: int) -> None:
        with self._lock:
            self._batches.observe(rows)

    def set_loaded_version(self, version: int) -> None:
        self._version = version

    def render(self) -> str:
        model: Labels = (("model", self.model_name),)
        with self._lock:
            lines = [
                "# HELP cloudai_requests_total HTTP requests answered, by endpoint and status code.",
                "# TYPE cloudai_requests_total counter",
                *(f"cloudai_requests_total{_render(k)} {v}" for k, v in sorted(self._requests.items())),
                "# HELP cloudai_request_errors_total Error answers: client (4xx) or server (5xx).",
                "# TYPE cloudai_request_errors_total counter",
                *(f"cloudai_request_errors_total{_render(k)} {v}" for k, v in sorted(self._errors.items())),
                "# HELP cloudai_request_latency_seconds Time from request received to response ready.",
                "# TYPE cloudai_request_latency_seconds histogram",
            ]
            for labels, histogram in sorted(self._latency.items()):
                lines += histogram.lines("cloudai_request_latency_seconds", labels)
            lines += [
                "# HELP cloudai_batch_size Rows per model call after dynamic batching.",
                "# TYPE cloudai_batch_size histogram",
                *self._batches.lines("cloudai_batch_size", model),
                "# HELP cloudai_model_version Version served by default (0: none loaded yet).",
                "# TYPE cloudai_model_version gauge",
                f"cloudai_model_version{_render(model)} {self._version}",
            ]
        return "\n".join(lines) + "\n"


def _render(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
