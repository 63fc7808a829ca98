"""OpenTelemetry for the CLI and the pytest plugin: providers built from the OTEL_* variables, or an endpoint.

Nothing is exported unless an endpoint is configured; the providers are handed to the run, never installed
globally.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["otlp_providers"]


def otlp_providers(endpoint: str | None) -> tuple[Any, Any, Callable[[], None]]:
    """(tracer provider, logger provider, shutdown) exporting with OTLP/HTTP; (None, None, noop) when no
    endpoint is configured (``--otlp-endpoint``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT``)."""
    configured = (
        endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if not configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None, None, lambda: None
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "promptlane")})
    base = endpoint.rstrip("/") if endpoint else None
    spans = OTLPSpanExporter(endpoint=f"{base}/v1/traces") if base else OTLPSpanExporter()
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    logs = OTLPLogExporter(endpoint=f"{base}/v1/logs") if base else OTLPLogExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))

    def shutdown() -> None:
        tracer_provider.shutdown()
        logger_provider.shutdown()

    return tracer_provider, logger_provider, shutdown
