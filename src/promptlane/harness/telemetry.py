"""OpenTelemetry export for the CLI, the pytest plugin and the server: providers built from the standard OTEL_*
variables (or an endpoint), and what became of the export.

Which signal goes where (the OTel SDK variables, read when the providers are built):

- ``OTEL_SDK_DISABLED=true``: nothing is exported.
- Traces: when an endpoint is configured (``--otlp-endpoint``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
  ``OTEL_EXPORTER_OTLP_ENDPOINT``) and ``OTEL_TRACES_EXPORTER`` is unset or names ``otlp``.
- Logs (the evaluation events, a copy of what the spans carry): when ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`` is set,
  or ``OTEL_LOGS_EXPORTER`` names ``otlp`` and a base endpoint is configured; never with ``OTEL_LOGS_EXPORTER=none``.
  A base endpoint alone sends traces only: a traces-only backend (Phoenix) answers 405 on ``/v1/logs``.
- A signal-specific endpoint is used as given; a base endpoint gets ``/v1/traces`` or ``/v1/logs`` appended. An
  endpoint given as an argument may be either (``http://host:4318`` or ``http://host:4318/v1/traces``).
- ``service.name`` is ``OTEL_SERVICE_NAME``, else the one in ``OTEL_RESOURCE_ATTRIBUTES``, else ``promptlane``.

Nothing is installed globally. A failed export is never silent: :meth:`OtlpExport.flush` returns one line per
signal that lost data, with the exporter's reason. The flush waits a bounded time, the exporter's timeout
(``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by default) plus :data:`FLUSH_MARGIN`, for both signals at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FLUSH_MARGIN", "OtlpExport", "SignalExport", "otlp_export", "otlp_providers", "signal_url"]

FLUSH_MARGIN = 1.0
"""Seconds the flush waits beyond the exporter's own timeout, so that the exporter's reason comes first."""

_PATHS = {"traces": "/v1/traces", "logs": "/v1/logs"}
_UNITS = {"traces": ("span", "spans"), "logs": ("log record", "log records")}
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http"


@dataclass(kw_only=True)
class SignalExport:
    """What became of one signal's export (traces or logs)."""

    signal: str
    """``traces`` or ``logs``."""
    endpoint: str
    """The URL the signal is posted to."""
    exported: int = 0
    """Items the backend accepted."""
    lost: int = 0
    """Items in batches that failed, or were still being sent when the flush gave up."""
    error: str | None = None
    """Why items were lost: the exporter's reason, or that the flush gave up waiting."""
    sending: int = field(default=0, repr=False)
    """Items of the batch being sent now."""
    made: int = field(default=0, repr=False)
    """Items handed to the export (the SDK's queue drops what does not fit: made, never sent)."""

    def to_json(self) -> dict[str, Any]:
        """The fields of the ``--json`` report."""
        return {"endpoint": self.endpoint, "exported": self.exported, "lost": self.lost, "error": self.error}

    def problem(self) -> str | None:
        """One line saying what was lost and why, or None when everything went."""
        if self.error is None:
            return None
        one, many = _UNITS[self.signal]
        lost = f"{self.lost} {one if self.lost == 1 else many} lost" if self.lost else "data may be lost"
        return f"{self.signal} export to {self.endpoint} failed ({lost}): {self.error}"


@dataclass(kw_only=True)
class OtlpExport:
    """The providers a run exports through, and the outcome of their export.

    Build one with :func:`otlp_export`; call :meth:`flush` once the runs are done.
    """

    tracer_provider: Any = None
    """An SDK ``TracerProvider`` exporting over OTLP/HTTP; one that exports nothing when only logs are exported
    (their events belong to spans); None when nothing is."""
    logger_provider: Any = None
    """An SDK ``LoggerProvider`` exporting over OTLP/HTTP, or None when logs are not exported."""
    signals: list[SignalExport] = field(default_factory=list[SignalExport])
    """The exported signals, traces first."""
    notes: list[str] = field(default_factory=list[str])
    """Settings that were not honoured (an exporter or protocol promptlane does not have)."""
    timeout: float = 10.0
    """Seconds the exporter waits for the backend; the flush waits this plus :data:`FLUSH_MARGIN`."""

    @property
    def problems(self) -> list[str]:
        """The notes and one line per signal that lost data."""
        return self.notes + [line for line in (signal.problem() for signal in self.signals) if line]

    def to_json(self) -> dict[str, Any] | None:
        """The ``export`` part of the ``--json`` report: None when nothing is exported."""
        if not self.signals and not self.notes:
            return None
        return {
            "ok": not self.problems,
            "signals": {signal.signal: signal.to_json() for signal in self.signals},
            "problems": self.problems,
        }

    def flush(self) -> list[str]:
        """Send what is left and shut the providers down, waiting at most the export timeout plus
        :data:`FLUSH_MARGIN` (both signals at once); returns :attr:`problems`."""
        providers = {"traces": self.tracer_provider, "logs": self.logger_provider}
        if self.tracer_provider is not None and not any(signal.signal == "traces" for signal in self.signals):
            self.tracer_provider.shutdown()  # spans made for the logs' sake: nothing to send
        flushing = [
            (signal, threading.Thread(target=providers[signal.signal].shutdown, daemon=True)) for signal in self.signals
        ]
        for _, thread in flushing:
            thread.start()
        deadline = time.monotonic() + self.timeout + FLUSH_MARGIN
        for signal, thread in flushing:
            # A collector that accepts the connection and trickles its answer holds the exporter forever; the
            # thread is a daemon, so it does not keep the process alive.
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                signal.lost += signal.sending
                signal.error = signal.error or f"no answer within {self.timeout + FLUSH_MARGIN:g} s"
            # What was made but neither sent nor counted lost: dropped from a full queue (a slow backend, a large
            # run), or still queued when the flush gave up.
            unsent = signal.made - signal.exported - signal.lost
            if unsent > 0:
                signal.lost += unsent
                variable = "OTEL_BSP_MAX_QUEUE_SIZE" if signal.signal == "traces" else "OTEL_BLRP_MAX_QUEUE_SIZE"
                signal.error = signal.error or f"the export queue was full ({variable}): {unsent} never sent"
        return self.problems


def otlp_providers(endpoint: str | None) -> tuple[Any, Any, Callable[[], None]]:
    """(tracer provider, logger provider, flush) of :func:`otlp_export`; the providers are None for the signals
    that are not exported."""
    export = otlp_export(endpoint)
    return export.tracer_provider, export.logger_provider, lambda: _log_problems(export.flush())


def _log_problems(problems: Sequence[str]) -> None:
    for line in problems:
        logging.getLogger("promptlane").warning("%s", line)


def signal_url(endpoint: str, signal: str) -> str:
    """The URL a signal is posted to for an endpoint given as an argument: a base URL (``http://host:4318``,
    the signal's path appended) or a signal's full URL (``http://host:4318/v1/traces``, its path swapped).

    Raises:
        ValueError: not an http(s) URL with a host.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{endpoint!r} is not an OTLP/HTTP endpoint: give a URL such as http://localhost:4318")
    base = endpoint.strip().rstrip("/")
    for path in _PATHS.values():
        base = base.removesuffix(path)
    return base + _PATHS[signal]


def _exporters(environ: Mapping[str, str], signal: str, notes: list[str]) -> set[str] | None:
    """The exporters ``OTEL_{SIGNAL}_EXPORTER`` names (None when unset); names other than otlp and none are
    noted and ignored."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = environ.get(variable, "").strip()
    if not raw:
        return None
    names = {name.strip().lower() for name in raw.split(",") if name.strip()}
    unsupported = sorted(names - {"otlp", "none"})
    if unsupported:
        notes.append(f"{variable}: {', '.join(unsupported)} ignored (promptlane exports otlp, or none)")
    return names


def _urls(endpoint: str | None, environ: Mapping[str, str], notes: list[str]) -> dict[str, str]:
    """The URL of each signal that is exported (see the module's docstring)."""
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    specific = {signal: environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip() for signal in _PATHS}
    urls: dict[str, str] = {}
    traces = _exporters(environ, "traces", notes)
    if traces is None or "otlp" in traces:
        if endpoint:
            urls["traces"] = signal_url(endpoint, "traces")
        elif specific["traces"]:
            urls["traces"] = specific["traces"]
        elif base:
            urls["traces"] = base.rstrip("/") + _PATHS["traces"]
    logs = _exporters(environ, "logs", notes)
    if specific["logs"] and (logs is None or "otlp" in logs):
        urls["logs"] = specific["logs"]
    elif logs is not None and "otlp" in logs and (endpoint or base):
        urls["logs"] = signal_url(endpoint, "logs") if endpoint else base.rstrip("/") + _PATHS["logs"]
    for variable in ("OTEL_EXPORTER_OTLP_PROTOCOL", *(f"OTEL_EXPORTER_OTLP_{s.upper()}_PROTOCOL" for s in urls)):
        protocol = environ.get(variable, "").strip()
        if urls and protocol and protocol != "http/protobuf":
            notes.append(f"{variable}={protocol} ignored: promptlane exports OTLP over HTTP (http/protobuf)")
    return urls


def _timeout(environ: Mapping[str, str], signals: Sequence[str]) -> float:
    """The longest of the exporters' timeouts in seconds, read as the OTel Python SDK reads them."""
    timeouts: list[float] = []
    for signal in signals:
        raw = environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT") or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT")
        try:
            timeouts.append(float(raw or 10))
        except ValueError:  # the SDK warns and uses its default
            timeouts.append(10.0)
    return max(timeouts, default=10.0)


def otlp_export(endpoint: str | None = None, environ: Mapping[str, str] | None = None) -> OtlpExport:
    """The providers that export a run over OTLP/HTTP, as the ``OTEL_*`` variables and ``endpoint`` say (see the
    module's docstring); an :class:`OtlpExport` without providers when nothing is to be exported.

    Args:
        endpoint: A base URL or the full traces URL, over the endpoint variables (``--otlp-endpoint``).
        environ: The environment to read (default ``os.environ``).

    Raises:
        ValueError: ``endpoint`` is not an http(s) URL.
    """
    environ = os.environ if environ is None else environ
    if endpoint is not None:
        signal_url(endpoint, "traces")  # a bad URL is refused even when the SDK is disabled
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return OtlpExport()
    notes: list[str] = []
    urls = _urls(endpoint, environ, notes)
    export = OtlpExport(notes=notes, timeout=_timeout(environ, list(urls)))
    if not urls:
        return export
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    # Resource.create puts its argument over OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: the default name is
    # given only when neither names the service.
    named = SERVICE_NAME in OTELResourceDetector().detect().attributes
    resource = Resource.create(None if named else {SERVICE_NAME: "promptlane"})
    _ExporterMessages.install()
    if "traces" in urls:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        signal = SignalExport(signal="traces", endpoint=urls["traces"])
        export.signals.append(signal)
        export.tracer_provider = TracerProvider(resource=resource)
        export.tracer_provider.add_span_processor(
            _counted(BatchSpanProcessor, "on_end", signal)(_tallied(OTLPSpanExporter(endpoint=signal.endpoint), signal))
        )
    if "logs" in urls:
        if export.tracer_provider is None:
            from opentelemetry.sdk.trace import TracerProvider

            # The evaluation events are events of the spans (and carry their trace id, the one the run records):
            # spans are made, and not exported.
            export.tracer_provider = TracerProvider(resource=resource)
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        signal = SignalExport(signal="logs", endpoint=urls["logs"])
        export.signals.append(signal)
        export.logger_provider = LoggerProvider(resource=resource)
        export.logger_provider.add_log_record_processor(
            _counted(BatchLogRecordProcessor, "on_emit", signal)(
                _tallied(OTLPLogExporter(endpoint=signal.endpoint), signal)
            )
        )
    return export


class _ExporterMessages(logging.Handler):
    """What the OTLP exporters log while a tallied export runs, by thread: the reason a batch failed. Being a
    handler of the exporters' logger, it also keeps their raw messages off stderr where nothing else logs."""

    _installed: _ExporterMessages | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int, list[str]] = {}

    @classmethod
    def install(cls) -> _ExporterMessages:
        with cls._lock:
            if cls._installed is None:
                cls._installed = cls()
                logging.getLogger(_EXPORTER_LOGGER).addHandler(cls._installed)
            return cls._installed

    def emit(self, record: logging.LogRecord) -> None:
        messages = self.by_thread.get(record.thread or 0)
        if messages is not None:
            messages.append(record.getMessage())

    def begin(self) -> None:
        self.by_thread[threading.get_ident()] = []

    def end(self) -> str | None:
        """The first and last message logged since :meth:`begin` in this thread (warnings often carry the cause,
        the last error the outcome)."""
        messages = self.by_thread.pop(threading.get_ident(), [])
        picked = list(dict.fromkeys(messages[:1] + messages[-1:]))
        return " / ".join(message[:400] for message in picked) or None


def _counted(processor: type, method: str, signal: SignalExport) -> Any:
    """``processor`` (a batch processor class) counting in ``signal`` each item handed to it through ``method``
    (``on_end`` for spans: the sampled ones, which it queues; ``on_emit`` for log records)."""

    def counting(self: Any, item: Any) -> None:
        context = getattr(item, "context", None)
        if method != "on_end" or (context is not None and context.trace_flags.sampled):
            signal.made += 1
        getattr(processor, method)(self, item)

    return type(f"Counted{processor.__name__}", (processor,), {method: counting})


def _tallied(inner: Any, signal: SignalExport) -> Any:
    """``inner``, counting in ``signal`` what it sent and lost (typed Any: it stands for a span or a log
    exporter, which the batch processors call alike)."""
    return _Tallied(inner, signal)


class _Tallied:
    """An exporter that counts what its inner exporter sent and lost, and keeps the reason of the last failure."""

    def __init__(self, inner: Any, signal: SignalExport) -> None:
        self.inner = inner
        self.signal = signal
        self.messages = _ExporterMessages.install()

    def export(self, batch: Sequence[Any]) -> Any:
        signal = self.signal
        signal.sending = len(batch)
        self.messages.begin()
        try:
            result = self.inner.export(batch)
        except Exception as exc:  # the batch processor ignores what export returns: None is as good as FAILURE
            self.messages.end()
            signal.lost, signal.sending = signal.lost + len(batch), 0
            signal.error = f"{type(exc).__name__}: {exc}"
            return None
        reason = self.messages.end()
        signal.sending = 0
        if getattr(result, "name", None) == "SUCCESS":  # SpanExportResult or LogExportResult
            signal.exported += len(batch)
        else:
            signal.lost += len(batch)
            signal.error = reason or "the exporter reported a failure"
        return result

    def shutdown(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.shutdown(*args, **kwargs)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
