"""OpenTelemetry tracing, configured by the standard ``OTEL_*`` variables.

Every service creates spans (so trace ids exist for exemplars and cross every
gRPC hop as W3C ``traceparent`` metadata); spans are exported over OTLP/gRPC
only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set.
``OTEL_SDK_DISABLED=true`` turns tracing off entirely.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace

log = logging.getLogger("talker.tracing")

_NOT_TRACED = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
               "grpc.reflection.v1.ServerReflection")


def enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def setup(service: str, version: str):
    """Install the global tracer provider; returns it (None when tracing is off)."""
    if not enabled():
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    attributes = {"service.namespace": "talker", "service.version": version}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = f"talker-{service}"
    provider = TracerProvider(resource=Resource.create(attributes))
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
        if protocol != "grpc":
            log.warning("OTEL_EXPORTER_OTLP_PROTOCOL=%s: only grpc is installed; exporting over grpc", protocol)
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("exporting traces over OTLP/gRPC")
    trace.set_tracer_provider(provider)
    return provider


def server_interceptor():
    """Extracts the caller's trace context and wraps each call in a server span."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    return aio_server_interceptor(filter_=filters.negate(filters.any_of(
        *(filters.service_name(s) for s in _NOT_TRACED))))


def client_interceptors() -> list:
    """Client spans that carry the current trace context to the callee."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def tracer(name: str = "talker"):
    return trace.get_tracer(name)


def exemplar(span=None) -> dict[str, str] | None:
    """A Prometheus exemplar naming the trace of ``span`` (default: the current span)."""
    ctx = (span or trace.get_current_span()).get_span_context()
    if ctx.is_valid and ctx.trace_flags.sampled:
        return {"trace_id": format(ctx.trace_id, "032x")}
    return None
