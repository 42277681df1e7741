"""`--metrics`: a real HTTP scrape of a running capsock, counters moved by
real traffic from real clients.

`serve --mode process` (metrics summed over forked instances), `serve
--mode thread` with `--restart`, `run` with a UDP guest whose replies a
deny rule refuses, and an embedder's `Host.run` hitting a limit.
"""

from __future__ import annotations

import re
import signal
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from capsock import Host, Limits, Policy
from capsock.runtime.metrics import Metrics

from .helpers import TIMEOUT, Running, echo_roundtrip, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of the endpoint, as Prometheus would read it."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples carrying `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items()
               if sample == name and wanted <= have)


def metrics_url(app: Running) -> str:
    """The endpoint capsock printed on stderr."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for line in list(app._stderr):
            found = re.search(r"metrics on (http://\S+)", line)
            if found:
                return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no metrics line: {app._stderr}")


def until(url: str, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until `check` holds (an instance updates its counters after
    the client saw the bytes), bounded; the last scrape either way."""
    deadline = time.monotonic() + TIMEOUT
    samples = scrape(url)
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.1)
        samples = scrape(url)
    return samples


def test_serve_processes_count_connections_and_bytes(guests: dict[str, Path]) -> None:
    """Forked instances' counters reach the parent's endpoint, summed."""
    app = Running("serve", "--instances", "2", "--tcplisten", "127.0.0.1:0", "--metrics",
                  "127.0.0.1:0", str(guests["echo"]))
    try:
        line = app.wait_for("listening on")
        port = int(line.rsplit(":", 1)[1])
        url = metrics_url(app)
        before = scrape(url)
        assert total(before, "capsock_instances_running") == 2
        assert total(before, "capsock_connections_total") == 0
        payloads = [bytes([65 + i]) * (1000 * (i + 1)) for i in range(6)]
        for payload in payloads:
            assert echo_roundtrip(port, payload) == payload
        origin = f"preopen 127.0.0.1:{port}"
        size = sum(map(len, payloads))
        after = until(url, lambda s: total(s, "capsock_connections_open") == 0
                      and total(s, "capsock_sent_bytes_total") == size)
        assert total(after, "capsock_connections_total", origin=origin, protocol="tcp") == 6
        assert total(after, "capsock_received_bytes_total", origin=origin) == size
        assert total(after, "capsock_sent_bytes_total", origin=origin) == size
        assert total(after, "capsock_connections_open") == 0
        # Held open: the gauge sees it while it lasts.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as held:
            held.sendall(b"ping")
            assert held.recv(4) == b"ping"
            assert total(until(url, lambda s: total(s, "capsock_connections_open") == 1),
                         "capsock_connections_open", origin=origin) == 1
        app.process.send_signal(signal.SIGTERM)
        code, _, err = app.finish()
        assert code == 0, err
        assert "0 socket(s) still open" in err  # the endpoint's socket is closed too
    finally:
        app.kill()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_restarts_are_counted(guests: dict[str, Path], mode: str) -> None:
    """`--restart always`: an echo that ends after one connection comes
    back; the restart is counted per instance."""
    app = Running("serve", "--instances", "1", "--mode", mode, "--restart", "always",
                  "--tcplisten", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                  str(guests["echo"]), "--max-connections", "1")
    try:
        port = int(app.wait_for("listening on").rsplit(":", 1)[1])
        url = metrics_url(app)
        assert echo_roundtrip(port, b"one") == b"one"
        app.wait_for("listening on")  # the second run of the instance
        assert echo_roundtrip(port, b"two") == b"two"
        samples = until(url, lambda s: total(s, "capsock_guest_restarts_total") >= 1)
        assert total(samples, "capsock_guest_restarts_total", instance="0") >= 1
        assert total(samples, "capsock_connections_total", instance="0") == 2
        app.process.send_signal(signal.SIGTERM)
        code, _, err = app.finish()
        assert "restarting in 0.1s (--restart always)" in err
    finally:
        app.kill()


def test_run_counts_decisions_per_rule(guests: dict[str, Path]) -> None:
    """A UDP echo may reply to one client and not to another: each reply's
    decision is counted under the rule that decided it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as allowed, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocked:
        allowed.bind(("127.0.0.1", 0))
        blocked.bind(("127.0.0.1", 0))
        allowed.settimeout(TIMEOUT)
        deny = f"udp://127.0.0.1:{blocked.getsockname()[1]}"
        app = Running("run", "--metrics", "127.0.0.1:0", "--allow-inbound=udp://127.0.0.1:*",
                      f"--deny-outbound={deny}", str(guests["udpecho"]),
                      f"127.0.0.1:{free_port()}", "--max-datagrams", "3")
        try:
            port = int(app.wait_for("listening on").rsplit(":", 1)[1])
            url = metrics_url(app)
            allowed.sendto(b"hello", ("127.0.0.1", port))
            assert allowed.recv(100) == b"hello"
            blocked.sendto(b"refused", ("127.0.0.1", port))
            app.wait_for("datagram 2")
            samples = until(url, lambda s: total(s, "capsock_decisions_total",
                                                 outcome="denied") == 1)
            assert total(samples, "capsock_decisions_total", operation="bind",
                         outcome="allowed", rule="allow-inbound udp://127.0.0.1:*") == 1
            assert total(samples, "capsock_decisions_total", outcome="denied",
                         rule=f"deny-outbound {deny}") == 1
            origin = "allow-inbound udp://127.0.0.1:*"
            assert total(samples, "capsock_received_bytes_total", protocol="udp",
                         origin=origin) == len(b"hello") + len(b"refused")
            assert total(samples, "capsock_sent_bytes_total", origin=origin) == len(b"hello")
            allowed.sendto(b"bye", ("127.0.0.1", port))
            assert allowed.recv(100) == b"bye"
            assert app.finish()[0] == 0
        finally:
            app.kill()


def test_an_embedders_limits_are_counted(guests: dict[str, Path], tmp_path: Path) -> None:
    """`Host.run(observer=...)`: a guest over --max-sockets, scraped."""
    metrics = Metrics()
    try:
        host, port = metrics.serve_http("127.0.0.1:0")
        local = ["tcp://127.0.0.1:*"]
        runner = Host(policy=Policy.from_flags(allow_outbound=local, allow_inbound=local),
                      limits=Limits(max_sockets=5))
        runner.run(guests["hostile"], ["hold", "tcp", "50"], stdout=tmp_path / "out.txt",
                   observer=metrics.instance("tenant-a"))
        samples = scrape(f"http://{host}:{port}/metrics")
        assert total(samples, "capsock_limits_hit_total", instance="tenant-a",
                     limit="max_sockets") >= 1
    finally:
        metrics.close()
