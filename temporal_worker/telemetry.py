"""The process's Temporal runtime: the core's logging and, when asked, the Prometheus endpoint, in one.

A Temporal ``Runtime`` carries all of the core's telemetry, and a client keeps the runtime it
was created with. The testing helpers want the core's logs forwarded to Python logging; the
worker command may want metrics served; a process that wants both needs one runtime with both.
So both go through here, and each call installs, as the default runtime, one that has
everything asked for so far. Clients connected afterwards use it (``client.connect`` and the
test servers' clients take the default).

The Prometheus endpoint binds its port when its runtime is created, so metrics are served
once per process; changing the logging after that keeps the runtime serving them.
"""

from __future__ import annotations

from temporalio.runtime import LoggingConfig, PrometheusConfig, Runtime, TelemetryConfig

from temporal_worker import metrics

__all__ = ["metrics_address", "serve_metrics", "set_logging"]

_logging: LoggingConfig | None = LoggingConfig.default
_metrics_address: str | None = None
_metrics_runtime: Runtime | None = None


def metrics_address(host: str, port: int) -> str:
    """``host:port`` as the core binds it (an IPv6 host in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def set_logging(config: LoggingConfig | None) -> None:
    """Use ``config`` for the core's logs in the runtimes installed from now on."""
    global _logging
    _logging = config
    if _metrics_address is None:  # a runtime serving metrics holds its port: keep it
        _install(TelemetryConfig(logging=config))


def serve_metrics(address: str) -> Runtime:
    """Serve Prometheus metrics (the SDK's and the library's) at ``http://<address>/metrics``.

    Installs the default runtime with the current logging and the endpoint, and turns the
    library's metrics on. Raises ``ValueError`` naming the address when it cannot be bound
    (in use, or not ``host:port``), and ``RuntimeError`` if this process serves elsewhere.
    """
    global _metrics_address, _metrics_runtime
    if _metrics_runtime is not None and _metrics_address == address:
        return _metrics_runtime
    if _metrics_address is not None:
        raise RuntimeError(f"this process already serves metrics at {_metrics_address}; it cannot serve at {address}")
    config = PrometheusConfig(bind_address=address, histogram_bucket_overrides=metrics.BUCKETS)
    try:
        runtime = _install(TelemetryConfig(logging=_logging, metrics=config))
    except ValueError as exc:  # the core: "Failed starting Prometheus exporter: Address already in use"
        raise ValueError(f"cannot serve metrics at {address}: {exc}") from None
    _metrics_address, _metrics_runtime = address, runtime
    metrics.enable(runtime.metric_meter)
    return runtime


def _install(telemetry: TelemetryConfig) -> Runtime:
    runtime = Runtime(telemetry=telemetry)
    Runtime.set_default(runtime, error_if_already_set=False)
    return runtime
