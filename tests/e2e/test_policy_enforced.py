"""The policy decides, and a denied operation never reaches the target."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .helpers import NativeServer, Running, free_port, run_capsock


@pytest.fixture
def server() -> NativeServer:
    peer = NativeServer()
    yield peer  # type: ignore[misc]
    peer.close()


def _no_pending_connection(server: NativeServer) -> bool:
    """True when no connection reached the server (not even in the backlog)."""
    server.sock.setblocking(False)
    try:
        conn, _ = server.sock.accept()
    except BlockingIOError:
        return not server.connections
    conn.close()
    return False


def test_client_reaches_allowed_server(guests: dict[str, Path], server: NativeServer) -> None:
    done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{server.port}",
                       str(guests["client"]), f"127.0.0.1:{server.port}", "hello")
    assert done.returncode == 0, done.stderr
    assert "received: HELLO" in done.stdout
    assert len(server.connections) == 1


@pytest.mark.parametrize("rules", [
    [],
    ["--allow-outbound=tcp://127.0.0.1:{other}"],
    ["--allow-outbound=tcp://127.0.0.2:{port}"],
    ["--allow-inbound=tcp://127.0.0.1:{port}"],
    ["--allow-outbound=tcp://127.0.0.1:*", "--deny-outbound=tcp://127.0.0.1:{port}"],
], ids=["no-rule", "other-port", "other-address", "inbound-only", "denied"])
def test_client_denied_makes_no_connection(guests: dict[str, Path], server: NativeServer,
                                           rules: list[str]) -> None:
    other = free_port()
    flags = [rule.format(port=server.port, other=other) for rule in rules]
    server.sock.close()  # stop the accept thread from taking anything...
    server._stop.set()
    server._thread.join(timeout=5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", server.port))
    listener.listen(4)
    listener.setblocking(False)
    try:
        done = run_capsock("run", *flags, str(guests["client"]), f"127.0.0.1:{server.port}", "x")
        assert done.returncode != 0
        assert "error: access-denied" in done.stderr, done.stderr
        with pytest.raises(BlockingIOError):
            listener.accept()  # ...so the backlog shows any attempt: none
    finally:
        listener.close()


def test_bind_denied_without_inbound_rule(guests: dict[str, Path]) -> None:
    port = free_port()
    done = run_capsock("run", "--allow-inbound=tcp://127.0.0.1:1-2", str(guests["probe"]),
                       "bind", f"127.0.0.1:{port}")
    assert "result: access-denied" in done.stdout, done.stdout + done.stderr
    with socket.socket() as check:  # the port was never bound by the guest
        check.bind(("127.0.0.1", port))


def test_bind_allowed_accepts_native_client(guests: dict[str, Path]) -> None:
    port = free_port()
    probe = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", str(guests["probe"]),
                    "bind", f"127.0.0.1:{port}")
    try:
        assert probe.wait_for("bound ") == f"bound 127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            probe.wait_for("accepted")
        code, _, err = probe.finish()
    finally:
        probe.kill()
    assert code == 0, err


@pytest.mark.parametrize("rule", [
    "--allow-outbound=tcp://1.2.3:80",
    "--allow-outbound=tcp://10.0.0.0/33:*",
    "--allow-outbound=ftp://x:1",
    "--allow-inbound=tcp://[::1:80",
    "--addr-pool=1.2.3.4",
])
def test_bad_rule_is_a_startup_error_naming_it(guests: dict[str, Path], rule: str) -> None:
    done = run_capsock("run", rule, str(guests["echo"]))
    assert done.returncode == 2
    assert rule.split("=", 1)[1].split(",")[0] in done.stderr
    assert "listening" not in done.stdout


def test_bypass_through_wasi_sockets_gets_no_network(guests: dict[str, Path],
                                                    server: NativeServer) -> None:
    """CPython's own socket module goes to wasmtime's wasi:sockets: denied,
    whatever capsock rules are given."""
    done = run_capsock("run", "--allow-outbound=tcp://*:*", "--allow-inbound=tcp://*:*",
                       "--addr-pool=127.0.0.0/8", str(guests["bypass"]),
                       f"127.0.0.1:{server.port}")
    assert "bypass connect: ok" not in done.stdout, done.stdout
    assert "bypass bind: ok" not in done.stdout, done.stdout
    assert "bypass connect:" in done.stdout and "bypass bind:" in done.stdout
    assert not server.connections
