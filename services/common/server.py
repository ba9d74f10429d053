"""The service runtime: one call runs a stage as a production gRPC server.

What every service gets from here: a grpc.aio server with the metrics and
error interceptors, ``grpc.health.v1`` (NOT_SERVING until the model is loaded
and again while draining), reflection, a Prometheus ``/metrics`` HTTP server on
its own port, a concurrency limit, and SIGTERM -> drain with a grace period.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY, CollectorRegistry

from services.common import metrics_server, registry, tracing
from services.common.config import ConfigError, ServerConfig, from_env, read_setting_file
from services.common.errors import ErrorInterceptor
from services.common.handlers import around, refusing
from services.common.metrics import (
    VERSION,
    GrpcServerMetrics,
    MetricsInterceptor,
    ModelMetrics,
    build_info,
    container_resources,
)

log = logging.getLogger("talker.server")


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    backend: str
    model: str
    device: str = "cpu"


class Stage(abc.ABC):
    """A model stage served over gRPC. Subclasses add their servicer and load their model."""

    #: short name: asr, llm, tts, animator, gateway
    name: str
    #: full names of the gRPC services it adds (for health and reflection)
    service_names: tuple[str, ...]

    @abc.abstractmethod
    def add_to_server(self, server: grpc.aio.Server) -> None: ...

    @abc.abstractmethod
    def load(self) -> LoadedModel:
        """Load the model; runs in a worker thread while health says NOT_SERVING."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Set up what needs the event loop (channels, tasks); runs before load()."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what load() took; called after the server has drained."""

    def saturation_limit(self, config: ServerConfig) -> int:
        """In-flight calls of its own RPCs at which the stage reports not ready (see LoadInterceptor)."""
        return config.max_concurrent_rpcs

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """Extra interceptors for the stage's own calls (e.g. client authentication), innermost last."""
        return []


class ReadinessInterceptor(grpc.aio.ServerInterceptor):
    """Refuses the stage's own RPCs with UNAVAILABLE until its model is loaded."""

    _ALWAYS = ("/grpc.health.v1.Health/", "/grpc.reflection.")

    def __init__(self, stage: str):
        self.stage = stage
        self.ready = False

    async def intercept_service(self, continuation, handler_call_details):
        if self.ready or handler_call_details.method.startswith(self._ALWAYS):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return None if handler is None else around(handler, refusing(grpc.StatusCode.UNAVAILABLE,
                                                                     f"{self.stage}: the model is still loading"))


class DelayInterceptor(grpc.aio.ServerInterceptor):
    """Fault injection: holds each of the stage's own calls for a fixed time first."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(ReadinessInterceptor._ALWAYS):
            return handler
        seconds = self.seconds

        @contextlib.asynccontextmanager
        async def delayed(request, context):
            await asyncio.sleep(seconds)
            yield request

        return around(handler, delayed)


class LoadInterceptor(grpc.aio.ServerInterceptor):
    """Counts the stage's own in-flight calls; at the limit its services' health turns NOT_SERVING.

    Readiness probes check the stage's service name (``talker.v1.TtsService``...), so a saturated
    replica leaves the load balancer's rotation until a call finishes; liveness checks the
    overall status (``""``), which stays SERVING. Calls beyond ``max_concurrent_rpcs`` are
    refused with RESOURCE_EXHAUSTED by gRPC itself, never queued.
    """

    def __init__(self, limit: int, on_change):
        self.limit = limit
        self.in_flight = 0
        self.on_change = on_change  # async (saturated: bool) -> None
        self._published = False
        self._tasks: set[asyncio.Task] = set()

    @property
    def saturated(self) -> bool:
        return self.in_flight >= self.limit

    def _publish(self) -> None:
        # Health updates run as their own tasks, in order: a call cancelled by its client
        # (its finally block runs while cancelled) must not lose the update.
        if self.saturated != self._published:
            self._published = self.saturated
            task = asyncio.ensure_future(self.on_change(self._published))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _enter(self) -> None:
        self.in_flight += 1
        self._publish()

    async def _leave(self) -> None:
        self.in_flight -= 1
        self._publish()

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(ReadinessInterceptor._ALWAYS):
            return handler

        @contextlib.asynccontextmanager
        async def counted(request, context):
            await self._enter()
            try:
                yield request
            finally:
                await self._leave()

        return around(handler, counted)


def _in_daemon_thread(fn) -> asyncio.Future:
    """Run ``fn`` in a daemon thread: a SIGTERM during a long model load must not wait for it."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(setter, value):
        if not future.done():
            setter(value)

    def work():
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            outcome = (future.set_exception, exc)
        else:
            outcome = (future.set_result, result)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop has closed: the process is shutting down

    threading.Thread(target=work, daemon=True, name="model-load").start()
    return future


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Keep idle client connections alive through proxies and detect dead peers.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    if config.max_connection_age_seconds:
        # gRPC adds +-10% jitter, so the clients of one replica do not all reconnect at once.
        options += [("grpc.max_connection_age_ms", int(config.max_connection_age_seconds * 1000)),
                    ("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace_seconds * 1000))]
    return options


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS (and mTLS when a client CA is set) from the certificate files, or None for plaintext."""
    if not config.tls_cert_file:
        return None
    key = read_setting_file("TALKER_TLS_KEY_FILE", config.tls_key_file)
    cert = read_setting_file("TALKER_TLS_CERT_FILE", config.tls_cert_file)
    client_ca = read_setting_file("TALKER_TLS_CLIENT_CA_FILE", config.tls_client_ca_file) \
        if config.tls_client_ca_file else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def setup_logging(level: str, name: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )


class StageServer:
    """A stage's gRPC server in three steps: built (``__init__``: interceptors, health, reflection,
    metrics in ``registry``), started and loaded (:meth:`start`, :meth:`load`), drained (:meth:`drain`).

    Nothing here is global: two can be built in one process, each with its own registry.
    """

    def __init__(self, stage: Stage, config: ServerConfig, registry: CollectorRegistry = REGISTRY,
                 tracing_on: bool = False):
        self.stage = stage
        self.config = config
        build_info(stage.name, registry)
        container_resources(config.memory_limit_bytes, config.cpu_request_millicores, registry)
        self.model_metrics = ModelMetrics(stage.name, registry)
        self.readiness = ReadinessInterceptor(stage.name)
        self.health = health.aio.HealthServicer()
        self.draining = False
        self.in_flight = LoadInterceptor(stage.saturation_limit(config), self._saturation)
        interceptors = [self.readiness, self.in_flight, ErrorInterceptor()]
        if config.metrics_enabled:
            interceptors.insert(0, MetricsInterceptor(GrpcServerMetrics(registry)))
        if tracing_on:
            interceptors.insert(0, tracing.server_interceptor())  # outermost: spans cover the rest
        interceptors += stage.interceptors()
        if config.fault_delay_seconds:
            log.warning("%s: fault injection on: every call waits %.2f s", stage.name, config.fault_delay_seconds)
            interceptors.append(DelayInterceptor(config.fault_delay_seconds))
        self.server = grpc.aio.server(interceptors=interceptors, options=server_options(config),
                                      maximum_concurrent_rpcs=config.max_concurrent_rpcs)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        stage.add_to_server(self.server)
        reflection.enable_server_reflection((*stage.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME),
                                            self.server)
        self.health_server: grpc.aio.Server | None = None
        self.credentials = server_credentials(config)
        self.address = f"{config.host}:{config.grpc_port}"
        self.port = 0  # the bound gRPC port, once started

    async def _set_health(self, status) -> None:
        for name in ("", *self.stage.service_names):
            await self.health.set(name, status)

    async def _saturation(self, saturated: bool) -> None:
        if not self.readiness.ready or self.draining:
            return
        status = health_pb2.HealthCheckResponse.NOT_SERVING if saturated else health_pb2.HealthCheckResponse.SERVING
        for name in self.stage.service_names:
            await self.health.set(name, status)
        if saturated:
            log.warning("%s: saturated (%d calls in flight): not ready", self.stage.name, self.in_flight.limit)
        else:
            log.info("%s: below its limit again: ready", self.stage.name)

    async def start(self) -> None:
        """Binds the ports and starts serving, NOT_SERVING until the model is loaded."""
        config, name = self.config, self.stage.name
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.port = self.server.add_secure_port(self.address, self.credentials) if self.credentials \
            else self.server.add_insecure_port(self.address)
        if self.port == 0:
            raise RuntimeError(f"cannot bind gRPC port {self.address}")
        await self.server.start()
        if config.health_port:
            # Health only, plaintext, outside the main server's concurrency limit: for probes.
            self.health_server = grpc.aio.server(options=server_options(config))
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.health_server)
            if self.health_server.add_insecure_port(f"{config.host}:{config.health_port}") == 0:
                raise RuntimeError(f"cannot bind the health port {config.host}:{config.health_port}")
            await self.health_server.start()
            log.info("%s: plaintext health-only port %d", name, config.health_port)
        security = ("plaintext" if self.credentials is None else
                    "mutual TLS" if config.tls_client_ca_file else "TLS")
        log.info("%s: gRPC (%s) on %s, metrics on http://%s:%d/metrics, loading the model",
                 name, security, self.address, config.metrics_host, config.metrics_port)

    async def load(self, stop: asyncio.Event) -> bool:
        """Loads the model (in a thread) and turns SERVING; False when ``stop`` came first.
        A model that fails to load ends the process (exit status 1)."""
        stage = self.stage
        await stage.start()
        t0 = time.perf_counter()
        load = _in_daemon_thread(stage.load)
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({load, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not load.done():
            load.cancel()
            return False
        if load.exception() is not None:
            log.error("%s: the model failed to load: %s", stage.name, load.exception(), exc_info=load.exception())
            await self.server.stop(0)
            raise SystemExit(1)
        model = load.result()
        seconds = time.perf_counter() - t0
        self.model_metrics.loaded(model.backend, model.model, model.device, seconds)
        self.readiness.ready = True
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        if self.in_flight.saturated:
            await self._saturation(True)
        log.info("%s: SERVING (%s %s on %s, loaded in %.2f s)", stage.name, model.backend, model.model,
                 model.device, seconds)
        return True

    async def drain(self) -> None:
        """NOT_SERVING, let calls in flight finish for the grace period, release the model."""
        log.info("%s: draining for up to %.1f s", self.stage.name, self.config.grace_seconds)
        self.model_metrics.ready.labels(self.stage.name).set(0)
        self.draining = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.config.grace_seconds)
        if self.health_server is not None:
            await self.health_server.stop(0)
        await self.stage.close()


async def serve(stage: Stage, config: ServerConfig, stop: asyncio.Event | None = None,
                registry: CollectorRegistry = REGISTRY) -> None:
    """Run ``stage`` until SIGTERM/SIGINT (or ``stop`` is set), then drain."""
    provider = tracing.setup(stage.name, VERSION)
    server = StageServer(stage, config, registry, tracing_on=provider is not None)
    metrics_server.start(config, registry)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    if await server.load(stop):
        await stop.wait()
    await server.drain()
    if provider is not None:
        provider.shutdown()  # flushes spans still queued for export
    log.info("%s: stopped", stage.name)


def run(stage_factory, name: str) -> None:
    """Entry point of a service process: read config (default ports from the registry), start, serve
    until SIGTERM."""
    service = registry.SERVICES[name]
    try:
        config = from_env(ServerConfig, "TALKER_", grpc_port=service.grpc_port, metrics_port=service.metrics_port)
        setup_logging(config.log_level, name)
        stage = stage_factory(config)
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    try:
        asyncio.run(serve(stage, config))
    except ConfigError as exc:  # settings only checkable at start, e.g. unreadable certificate files
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
