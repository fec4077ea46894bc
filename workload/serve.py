"""`cloud-ai serve`: a TensorFlow Serving-compatible REST server over a model store.

It serves the largest complete version of one model, watches the store and swaps a newer version in
once it is loaded and warm (requests never wait on a half-loaded model), loads other versions on demand
when a URL names them, and coalesces concurrent requests into batches (workload.batching).
Endpoints: TF Serving's /v1/models/... API, /healthz (liveness), /readyz (200 once a version is loaded,
503 until then), /metrics (Prometheus text) and /openapi.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

from workload import api
from workload.batching import DynamicBatcher
from workload.errors import UserError
from workload.metrics import CONTENT_TYPE, ServerMetrics
from workload.openapi import openapi_spec
from workload.store import ModelStore

log = logging.getLogger(__name__)

# Versions other than the default one that stay loaded after a URL asked for them.
EXTRA_VERSIONS_KEPT = 2


@dataclass(frozen=True)
class ServeSettings:
    """Everything `cloud-ai serve` is told, checked once so the rest of the module can trust it."""

    store_url: str
    model_name: str
    host: str = "127.0.0.1"
    port: int = 8501
    poll_seconds: float = 30.0
    max_batch_size: int = 32
    batch_timeout_ms: float = 5.0
    max_body_bytes: int = 16 * 1024 * 1024
    top_k: int = 5

    def __post_init__(self) -> None:
        checks = [
            ("--port", self.port, 0 <= self.port <= 65535, "a port number 0-65535"),
            ("--poll-seconds", self.poll_seconds, self.poll_seconds > 0, "a number of seconds > 0"),
            ("--max-batch-size", self.max_batch_size, self.max_batch_size >= 1, "a whole number >= 1"),
            ("--batch-timeout-ms", self.batch_timeout_ms, self.batch_timeout_ms >= 0, "milliseconds >= 0"),
            ("--max-body-mb", self.max_body_bytes, self.max_body_bytes > 0, "megabytes > 0"),
            ("--top-k", self.top_k, self.top_k >= 1, "a whole number >= 1"),
            ("--model-name", self.model_name, _is_model_name(self.model_name), "a name without '/' or ':'"),
        ]
        for option, value, ok, allowed in checks:
            if not ok:
                raise UserError(f"{option} = {value!r} is not allowed: expected {allowed}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeSettings:
        return cls(
            store_url=args.model_store,
            model_name=args.model_name,
            host=args.host,
            port=args.port,
            poll_seconds=args.poll_seconds,
            max_batch_size=args.max_batch_size,
            batch_timeout_ms=args.batch_timeout_ms,
            max_body_bytes=int(args.max_body_mb * 1024 * 1024),
            top_k=args.top_k,
        )


def _is_model_name(name: str) -> bool:
    return bool(name) and "/" not in name and ":" not in name


class SavedModelVersion:
    """One model version loaded into TensorFlow, called through its `serving_default` signature."""

    def __init__(self, version: int, folder: Path) -> None:
        import tensorflow as tf

        self.version = version
        self.signature = api.ModelSignature.from_folder(folder)
        self._tf = tf
        self._saved_model = tf.saved_model.load(str(folder))  # the signature needs its object alive
        self._function = self._saved_model.signatures[api.DEFAULT_SIGNATURE]
        self._input = next(iter(self._function.structured_input_signature[1]))
        self._output = next(iter(self._function.structured_outputs))
        self.predict(np.zeros((1, *self.signature.input_shape), np.float32))  # trace before first request

    def predict(self, images: np.ndarray) -> np.ndarray:
        """float32 [batch, H, W, 3] 0-255 -> class probabilities [batch, classes]."""
        outputs = self._function(**{self._input: self._tf.constant(images)})
        return outputs[self._output].numpy()


class ModelVersions:
    """The versions of one model this server answers for, kept in step with the store."""

    def __init__(self, store: ModelStore, name: str, on_default: Callable[[int], None]) -> None:
        self.store = store
        self.name = name
        self.default: SavedModelVersion | None = None
        self._extra: OrderedDict[int, SavedModelVersion] = OrderedDict()
        self._loading: dict[int, asyncio.Future[SavedModelVersion]] = {}
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader")
        self._on_default = on_default

    def loaded_versions(self) -> list[int]:
        versions = set(self._extra)
        if self.default is not None:
            versions.add(self.default.version)
        return sorted(versions)

    async def get(self, version: int | None) -> SavedModelVersion:
        """The default version, or a specific one (loaded on demand); a 404 if there is no such version."""
        if version is None:
            if self.default is None:
                raise api.servable_not_found(self.name, None)
            return self.default
        if self.default is not None and self.default.version == version:
            return self.default
        if version in self._extra:
            self._extra.move_to_end(version)
            return self._extra[version]
        if version not in await self._in_thread(self.store.versions, self.name):
            raise api.servable_not_found(self.name, version)
        model = await self._load(version)
        self._extra[version] = model
        while len(self._extra) > EXTRA_VERSIONS_KEPT:
            self._extra.popitem(last=False)
        return model

    async def refresh(self) -> None:
        """Load the store's latest complete version if it is not the default yet, then swap it in."""
        latest = await self._in_thread(self.store.latest_version, self.name)
        if latest is None or (self.default is not None and self.default.version == latest):
            return
        model = self._extra.pop(latest, None) or await self._load(latest)
        previous, self.default = self.default, model  # requests holding the previous one finish on it
        self._on_default(latest)
        log.info(
            "serving %s version %d%s", self.name, latest, f" (was {previous.version})" if previous else ""
        )

    async def watch(self, poll_seconds: float) -> None:
        """Refresh forever; a store outage is logged and retried, never fatal."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception(
                    "could not refresh %s from %s; retrying in %.1f s",
                    self.name,
                    self.store.url,
                    poll_seconds,
                )
            await asyncio.sleep(poll_seconds)

    async def _load(self, version: int) -> SavedModelVersion:
        if version not in self._loading:
            self._loading[version] = asyncio.ensure_future(self._in_thread(self._load_blocking, version))
        try:
            return await asyncio.shield(self._loading[version])
        finally:
            if self._loading.get(version) is not None and self._loading[version].done():
                del self._loading[version]

    def _load_blocking(self, version: int) -> SavedModelVersion:
        started = time.perf_counter()
        if self.store.is_local:
            model = SavedModelVersion(version, Path(self.store.root) / "models" / self.name / str(version))
        else:
            scratch = Path(tempfile.mkdtemp(prefix=f"cloud-ai-{self.name}-{version}-"))
            try:
                model = SavedModelVersion(version, self.store.download_version(self.name, version, scratch))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        log.info("loaded %s version %d in %.1f s", self.name, version, time.perf_counter() - started)
        return model

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._loader, function, *args)

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ModelServer:
    """The aiohttp application: routes, error mapping, metrics, batching and the version watcher."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics(settings.model_name)
        self.versions = ModelVersions(
            ModelStore(settings.store_url), settings.model_name, self.metrics.set_loaded_version
        )
        self.batcher = DynamicBatcher(
            settings.max_batch_size, settings.batch_timeout_ms / 1000, on_batch=self.metrics.observe_batch
        )
        self._watcher: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_body_bytes, middlewares=[self._errors_and_metrics]
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_route("*", "/v1/{tail:.*}", self._v1)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self.batcher.start()
        self._watcher = asyncio.get_running_loop().create_task(
            self.versions.watch(self.settings.poll_seconds)
        )

    async def _stop(self, _: web.Application) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.batcher.stop()
        self.versions.close()

    @web.middleware
    async def _errors_and_metrics(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Bad input -> TF Serving's {"error"} with a 4xx; internal faults -> logged traceback and a 500."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except api.ApiError as error:
            response = _json(error.body(), error.status)
        except web.HTTPException as error:
            response = _json({"error": error.reason}, error.status)
        except Exception:
            log.exception("internal error answering %s %s", request.method, request.path)
            response = _json({"error": "internal server error; see the server log"}, 500)
        self.metrics.observe_request(
            request.get("endpoint", "other"), response.status, time.perf_counter() - started
        )
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        request["endpoint"] = "healthz"
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        request["endpoint"] = "readyz"
        if self.versions.default is None:
            return web.Response(status=503, text="no model version loaded yet\n")
        return web.Response(
            text=f"ready: {self.settings.model_name} version {self.versions.default.version}\n"
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        request["endpoint"] = "metrics"
        return web.Response(body=self.metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _openapi(self, request: web.Request) -> web.Response:
        request["endpoint"] = "openapi"
        return _json(openapi_spec(self.settings.model_name), 200)

    async def _v1(self, request: web.Request) -> web.Response:
        route = api.parse_route(request.path)
        if route is None:
            raise api.ApiError(404, f"no such endpoint: {request.path}")
        request["endpoint"] = route.action
        if route.name != self.settings.model_name:
            raise api.servable_not_found(route.name, route.version)
        expected = "POST" if route.action in ("predict", "classify") else "GET"
        if request.method != expected:
            raise api.ApiError(405, f"{request.method} is not allowed here; use {expected}")
        model = await self.versions.get(route.version)
        if route.action == "status":
            versions = [model.version] if route.version is not None else self.versions.loaded_versions()
            return _json(api.status_response(versions), 200)
        if route.action == "metadata":
            return _json(api.metadata_response(route.name, model.version, model.signature), 200)
        body = await _read_body(request, self.settings.max_body_bytes)
        if route.action == "predict":
            parsed = api.parse_predict(body, model.signature)
            probabilities = await self.batcher.submit(model.predict, parsed.images)
            return _json(api.predict_response(probabilities, parsed.columnar), 200)
        images = api.parse_classify(body, model.signature)
        probabilities = await self.batcher.submit(model.predict, images)
        return _json(api.classify_response(probabilities, model.signature.labels, self.settings.top_k), 200)


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_large = api.ApiError(413, f"request body is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None


def _json(document: dict[str, Any], status: int) -> web.Response:
    return web.Response(body=api.dumps(document), status=status, content_type="application/json")


async def serve_until_stopped(
    settings: ServeSettings, stop: asyncio.Event, started: Callable[[str], None]
) -> None:
    """Listen on settings.host:port until STOP is set; STARTED gets the base URL once bound."""
    runner = web.AppRunner(ModelServer(settings).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise UserError(
            f"cannot listen on {settings.host}:{settings.port}: {error.strerror or error}"
        ) from None
    try:
        port = runner.addresses[0][1]
        started(f"http://{settings.host}:{port}")
        await stop.wait()
    finally:
        await runner.cleanup()


class BackgroundServer:
    """The server on a thread of this process (quickstart, tests, benchmarks): start(), url, stop()."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="model-server", daemon=True)

    def start(self, ready_timeout_s: float = 120.0) -> BackgroundServer:
        """Start listening and wait until a model version answers (/readyz is 200)."""
        self._thread.start()
        self._bound.wait()
        if self._error is not None:
            raise self._error
        deadline = time.monotonic() + ready_timeout_s
        while not self.is_ready():
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"no model version became ready within {ready_timeout_s:.0f} s")
            time.sleep(0.1)
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()

        def bound(url: str) -> None:
            self.url = url
            self._bound.set()

        try:
            self._loop.run_until_complete(serve_until_stopped(self.settings, self._stop, bound))
        except BaseException as error:
            self._error = error
        finally:
            self._bound.set()
            self._loop.close()


def command(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    settings = ServeSettings.from_args(args)
    asyncio.run(_serve_with_signals(settings))
    return 0


async def _serve_with_signals(settings: ServeSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve_until_stopped(
        settings, stop, lambda url: log.info("listening on %s (model %s)", url, settings.model_name)
    )
    log.info("stopped")
