"""Prometheus metrics (`--metrics HOST:PORT`), fed by core's observer seam.

Core reports to an `InstanceObserver` (core/observe.py); this module is
the Prometheus implementation, with `prometheus_client` (the `metrics`
extra), imported only when `--metrics` is given. Served over HTTP on
HOST:PORT, any path (`/metrics` by convention: the Kubernetes manifests
probe it for readiness).

The metrics, all with an `instance` label (the `serve` instance index,
`CAPSOCK_INSTANCE`; `0` for `run`), so that restarts do not mint new
series:

===============================  ===========================================
capsock_decisions_total          policy decisions by operation, protocol,
                                 outcome (allowed/denied) and rule
capsock_limits_hit_total         requests refused by a `--max-*` limit
capsock_connections_open         TCP connections open now (gauge), by origin
capsock_connections_total        TCP connections opened (accepted or
                                 connected), by origin
capsock_received_bytes_total     bytes the guest received, by protocol, origin
capsock_sent_bytes_total         bytes the guest sent, by protocol, origin
capsock_tls_handshakes_total     TLS handshakes by outcome (for a TLS layer)
capsock_guest_restarts_total     instances restarted by `serve --restart`
capsock_instances_running        instances running now (gauge)
capsock_audit_lines_dropped_total  audit lines lost, by reason (queue-full,
                                 write-failed): see core/audit.py
===============================  ===========================================

`rule` and `origin` label values come from the operator's policy (see
core/observe.py), so the number of series is bounded by it.

`serve --mode process` runs instances in forked processes: the counters
live in files (prometheus_client's multiprocess mode, in a private
temporary directory made before the first metric), and the endpoint in the
parent sums them; a gauge counts only live processes (`livesum`, and the
parent marks each ended instance dead). Everywhere else one process holds
them all in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING, Any

from ..addresses import parse_host_port
from ..core.observe import InstanceObserver
from ..policy import Decision

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


class MetricsError(Exception):
    """`--metrics` cannot be served (no prometheus_client, a bad address)."""


_MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The process's metrics and their HTTP endpoint.

    Create it before any instance runs (and, with `multiprocess`, before
    forking); `serve_http` starts the endpoint, `close` stops it and
    removes what multiprocess mode wrote.
    """

    def __init__(self, multiprocess: bool = False) -> None:
        self._own_dir: str | None = None
        if multiprocess and _MULTIPROC_VARIABLE not in os.environ:
            # prometheus_client picks its value class when first imported:
            # the variable must be set before that.
            self._own_dir = tempfile.mkdtemp(prefix="capsock-metrics-")
            os.environ[_MULTIPROC_VARIABLE] = self._own_dir
        try:
            import prometheus_client as prom
            from prometheus_client import multiprocess as prom_multiprocess
        except ImportError:
            self._remove_dir()
            raise MetricsError("--metrics needs the prometheus_client package: "
                               "pip install 'capsock[metrics]'") from None
        self._prom_multiprocess = prom_multiprocess
        self.multiprocess = multiprocess
        from prometheus_client import values

        if multiprocess and not getattr(values.ValueClass, "_multiprocess", False):
            # Imported before the variable was set (an embedder's own
            # metrics): values would stay in this process, and forked
            # instances' counters would never reach the endpoint.
            self._remove_dir()
            raise MetricsError("prometheus_client was imported before capsock could set "
                               f"{_MULTIPROC_VARIABLE}: set it before importing it, or "
                               "run instances as threads (--mode thread)")
        if multiprocess:
            self.registry = prom.CollectorRegistry()
            prom_multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
            metric_registry: Any = None  # in files: the collector reads them
        else:
            self.registry = prom.CollectorRegistry()
            metric_registry = self.registry
        live: dict[str, Any] = {"multiprocess_mode": "livesum"} if multiprocess else {}
        self.decisions = prom.Counter(
            "capsock_decisions", "Policy decisions", ["instance", "operation", "protocol",
                                                      "outcome", "rule"],
            registry=metric_registry)
        self.limits = prom.Counter("capsock_limits_hit", "Requests refused by a --max-* limit",
                                   ["instance", "limit"], registry=metric_registry)
        self.connections_open = prom.Gauge(
            "capsock_connections_open", "TCP connections open", ["instance", "protocol",
                                                                  "origin"],
            registry=metric_registry, **live)
        self.connections = prom.Counter(
            "capsock_connections", "TCP connections opened (accepted or connected)",
            ["instance", "protocol", "origin"], registry=metric_registry)
        self.received = prom.Counter(
            "capsock_received_bytes", "Bytes the guest received",
            ["instance", "protocol", "origin"], registry=metric_registry)
        self.sent = prom.Counter(
            "capsock_sent_bytes", "Bytes the guest sent", ["instance", "protocol", "origin"],
            registry=metric_registry)
        self.tls_handshakes = prom.Counter(
            "capsock_tls_handshakes", "TLS handshakes", ["instance", "outcome"],
            registry=metric_registry)
        self.restarts = prom.Counter(
            "capsock_guest_restarts", "Instances restarted (serve --restart)", ["instance"],
            registry=metric_registry)
        self.running = prom.Gauge("capsock_instances_running", "Instances running",
                                  registry=metric_registry, **live)
        self.audit_dropped = prom.Counter(
            "capsock_audit_lines_dropped", "Audit lines lost", ["reason"],
            registry=metric_registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._prom = prom

    def instance(self, label: str) -> InstanceObserver:
        """The observer for instance `label` (its metrics' `instance`)."""
        return _PrometheusObserver(self, label)

    def audit_lines_dropped(self, reason: str, count: int) -> None:
        """The audit log lost `count` lines (its drop hook, core/audit.py)."""
        self.audit_dropped.labels(reason).inc(count)

    def serve_http(self, address: str) -> tuple[str, int]:
        """Start the endpoint on `address` (HOST:PORT, port 0 picks one) in
        a daemon thread; returns the host and port it listens on."""
        try:
            where = parse_host_port(address)
        except ValueError as error:
            raise MetricsError(f"invalid --metrics: {error}") from None
        host = str(where.ip)
        try:
            server, thread = self._prom.start_http_server(where.port, host,
                                                          registry=self.registry)
        except OSError as error:
            raise MetricsError(f"cannot serve --metrics on {address}: "
                               f"{error.strerror or error}") from None
        self._server, self._thread = server, thread
        return host, int(server.server_port)

    def forked(self) -> None:
        """In a forked instance: drop the endpoint's socket (the parent serves it)."""
        if self._server is not None:
            self._server.socket.close()
            self._server = None

    def process_ended(self, pid: int) -> None:
        """A forked instance ended: its live gauges no longer count."""
        if self.multiprocess:
            self._prom_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop the endpoint (its socket closed) and remove the files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._remove_dir()

    def _remove_dir(self) -> None:
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            if os.environ.get(_MULTIPROC_VARIABLE) == self._own_dir:
                del os.environ[_MULTIPROC_VARIABLE]
            self._own_dir = None


class _PrometheusObserver:
    """One instance's `InstanceObserver` on `Metrics` (labels fixed here)."""

    def __init__(self, metrics: Metrics, label: str) -> None:
        self._metrics = metrics
        self._label = label
        #: (protocol, origin) -> the bytes counters' children: `labels()`
        #: costs ~1 us a call, and bytes are counted on every send/receive.
        self._bytes: dict[tuple[str, str], tuple[Any, Any]] = {}

    def decision(self, operation: str, protocol: str, decision: Decision) -> None:
        self._metrics.decisions.labels(self._label, operation, protocol,
                                       "allowed" if decision.allowed else "denied",
                                       decision.rule or "-").inc()

    def limit(self, name: str) -> None:
        self._metrics.limits.labels(self._label, name).inc()

    def connection(self, protocol: str, origin: str, delta: int) -> None:
        self._metrics.connections_open.labels(self._label, protocol, origin).inc(delta)
        if delta > 0:
            self._metrics.connections.labels(self._label, protocol, origin).inc(delta)

    def transferred(self, protocol: str, origin: str, received: int, sent: int) -> None:
        counters = self._bytes.get((protocol, origin))
        if counters is None:
            counters = (self._metrics.received.labels(self._label, protocol, origin),
                        self._metrics.sent.labels(self._label, protocol, origin))
            self._bytes[(protocol, origin)] = counters
        if received:
            counters[0].inc(received)
        if sent:
            counters[1].inc(sent)

    def tls_handshake(self, outcome: str) -> None:
        self._metrics.tls_handshakes.labels(self._label, outcome).inc()


__all__ = ["Metrics", "MetricsError"]
