"""Prometheus metrics every service shares: gRPC server metrics, model and build info.

The gRPC metrics use the names of go-grpc-prometheus (``grpc_server_*``) so that
community gRPC dashboards work unchanged.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import AsyncIterator

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common import buckets
from services.common.handlers import GRPC_TYPES, around, shape
from services.common.tracing import exemplar

NAMESPACE = "talker"
VERSION = "0.1.0"


class GrpcServerMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started_total", "RPCs started on the server.",
                               labels, registry=registry)
        self.handled = Counter("grpc_server_handled_total", "RPCs completed on the server, by status code.",
                               [*labels, "grpc_code"], registry=registry)
        self.received = Counter("grpc_server_msg_received_total", "Stream messages received on the server.",
                                labels, registry=registry)
        self.sent = Counter("grpc_server_msg_sent_total", "Stream messages sent by the server.",
                            labels, registry=registry)
        self.seconds = Histogram("grpc_server_handling_seconds",
                                 "Time from the start of an RPC to its end on the server.",
                                 labels, buckets=buckets.GRPC, registry=registry)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC. Install it outermost so it sees final status codes."""

    def __init__(self, metrics: GrpcServerMetrics):
        self.m = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method.lstrip("/")
        service, _, method = full.partition("/")
        labels = (GRPC_TYPES[shape(handler)], service, method)
        m = self.m

        @contextlib.asynccontextmanager
        async def timed(request, context):
            m.started.labels(*labels).inc()
            if handler.request_streaming:
                request = _counted(request, m.received.labels(*labels))
            else:
                m.received.labels(*labels).inc()
            start, exc = time.perf_counter(), None
            try:
                yield request
            except BaseException as e:
                exc = e
                raise
            finally:
                m.handled.labels(*labels, _final_code(context, exc)).inc()
                m.seconds.labels(*labels).observe(time.perf_counter() - start, exemplar())

        return around(handler, timed, m.sent.labels(*labels).inc)


async def _counted(requests: AsyncIterator, counter) -> AsyncIterator:
    async for item in requests:
        counter.inc()
        yield item


def _final_code(context, exc: BaseException | None) -> str:
    import asyncio

    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "Canceled"
    code = context.code()
    if code is None:
        code = grpc.StatusCode.OK if exc is None else grpc.StatusCode.UNKNOWN
    if isinstance(code, int):
        code = grpc.StatusCode(code) if not isinstance(code, grpc.StatusCode) else code
    return _GO_NAMES.get(code, code.name)


# go-grpc-prometheus labels codes with Go's spelling (OK, Canceled, InvalidArgument, ...).
_GO_NAMES = {c: "".join(p.capitalize() for p in c.name.split("_")) for c in grpc.StatusCode}
_GO_NAMES[grpc.StatusCode.OK] = "OK"
_GO_NAMES[grpc.StatusCode.CANCELLED] = "Canceled"


class ModelMetrics:
    """What a stage has loaded, how long it took, whether it is ready."""

    def __init__(self, stage: str, registry: CollectorRegistry = REGISTRY):
        self.stage = stage
        registry.register(DeviceMemoryCollector(stage))
        self.info = Gauge(f"{NAMESPACE}_model_info", "The model a stage serves (value 1).",
                          ["stage", "backend", "model", "device"], registry=registry)
        self.load_seconds = Gauge(f"{NAMESPACE}_model_load_seconds", "Seconds the last model load took.",
                                  ["stage"], registry=registry)
        self.ready = Gauge(f"{NAMESPACE}_model_ready", "1 when the stage's model is loaded and serving.",
                           ["stage"], registry=registry)
        self.ready.labels(stage).set(0)

    def loaded(self, backend: str, model: str, device: str, seconds: float) -> None:
        self.info.labels(self.stage, backend, model, device).set(1)
        self.load_seconds.labels(self.stage).set(seconds)
        self.ready.labels(self.stage).set(1)


class DeviceMemoryCollector(Collector):
    """``talker_device_memory_bytes`` / ``_total_bytes`` per visible accelerator, read at scrape time.

    Device-wide figures, because inference engines (vLLM's workers) hold the memory in other
    processes: from NVML when nvidia-ml-py and a driver are present, else from torch's
    ``mem_get_info`` when the process has imported torch and sees CUDA devices. On a CPU-only
    process the families are announced without samples, so dashboards and alerts know the names.
    """

    def __init__(self, stage: str):
        self.stage = stage

    def collect(self):
        used = GaugeMetricFamily(f"{NAMESPACE}_device_memory_bytes", "Accelerator memory in use on the device.",
                                 labels=["stage", "device"])
        total = GaugeMetricFamily(f"{NAMESPACE}_device_memory_total_bytes", "Accelerator memory size.",
                                  labels=["stage", "device"])
        for device, in_use, size in _device_memory():
            used.add_metric([self.stage, device], in_use)
            total.add_metric([self.stage, device], size)
        yield used
        yield total


def _device_memory() -> list[tuple[str, float, float]]:
    try:
        import pynvml
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            indexes = ([int(i) for i in visible.split(",") if i.strip().isdigit()] if visible
                       else list(range(pynvml.nvmlDeviceGetCount())))
            out = []
            for n, i in enumerate(indexes):
                info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i))
                out.append((f"cuda:{n}", float(info.used), float(info.total)))
            return out
        except pynvml.NVMLError:
            pass
    torch = sys.modules.get("torch")  # never import torch just to look: it costs seconds and memory
    if torch is not None:
        try:
            if torch.cuda.is_available():
                out = []
                for i in range(torch.cuda.device_count()):
                    free, size = torch.cuda.mem_get_info(i)
                    out.append((f"cuda:{i}", float(size - free), float(size)))
                return out
        except Exception:  # noqa: BLE001 - a broken driver must not break /metrics
            return []
    return []


def container_resources(memory_limit_bytes: int, cpu_request_millicores: int,
                        registry: CollectorRegistry = REGISTRY) -> None:
    """The container's memory limit and CPU request, when known (the rules' fallback for
    kube-state-metrics): the OOM forecast and the replicas-needed rules divide by them."""
    if memory_limit_bytes:
        Gauge(f"{NAMESPACE}_memory_limit_bytes", "The container's memory limit.",
              registry=registry).set(memory_limit_bytes)
    if cpu_request_millicores:
        Gauge(f"{NAMESPACE}_cpu_request_cores", "The container's CPU request.",
              registry=registry).set(cpu_request_millicores / 1000)


def build_info(service: str, registry: CollectorRegistry = REGISTRY) -> None:
    Info(f"{NAMESPACE}_build", "Talker build and runtime versions.", registry=registry).info({
        "service": service,
        "version": VERSION,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    })
