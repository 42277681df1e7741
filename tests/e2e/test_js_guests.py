"""A second language: ComponentizeJS guests (guest/js/) under `capsock run`.

- a JS `wasi:cli/command`: what StarlingMonkey's runtime gives JS for the
  network (no socket API; its only network import is wasi:http for
  `fetch`, left out of this build), checked on its imports and its globals;
- a JS guest of capsock's own `capsock:net` world: an echo server on a
  pre-opened listener served to a native client, a client of a native
  server (allowed, denied, no capability), and the capsock:net conformance
  cases of the kinds it implements, through the kit's own harness, on both
  backends.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from capsock.conformance import CASES, run_all
from capsock.conformance.harness import peers_factory
from capsock.toolchain import find_tools

from .helpers import NativeServer, Running, echo_roundtrip, run_capsock
from .js_guests import build

#: The probe kinds guest/js/net/app.js implements (as the Python probe does).
JS_KINDS = {"tcp-network", "udp-network", "resolver", "tcp-create", "udp-create", "tcp-connect",
            "tcp-connect-twice", "tcp-bind", "tcp-bind-twice", "tcp-listen", "tcp-echo",
            "udp-bind", "udp-send", "udp-echo", "preopen-protocol", "preopen-family",
            "preopen-name", "preopen-taken-once", "resolve"}


@pytest.fixture(scope="module")
def js_net() -> Path:
    return build("net")


def test_js_command_runtime_has_no_socket_api(tmp_path: Path) -> None:
    command = build("command")
    wit = subprocess.run([find_tools().wasm_tools, "component", "wit", str(command)],
                         capture_output=True, text=True, timeout=120)
    imports = [line.split()[1] for line in wit.stdout.splitlines()
               if line.strip().startswith("import ")]
    assert imports and not [name for name in imports if name.startswith("wasi:sockets")]
    assert not [name for name in imports if name.startswith("wasi:http")]
    done = run_capsock("run", str(command), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # `fetch` is the only network API JS gets (defined even with its
    # wasi:http import left out, as here); nothing socket-like.
    assert report["present"] == ["fetch"]
    assert {"WebSocket", "TCPSocket", "process", "require"} <= set(report["absent"])
    assert "console" in report["globals"]


def test_js_echo_serves_a_native_client(js_net: Path) -> None:
    server = Running("run", "--tcplisten=127.0.0.1:0", str(js_net), "echo", "2")
    try:
        port = int(server.wait_for("listening on ", timeout=300).rsplit(":", 1)[1])
        payload = bytes(range(256)) * 64
        assert echo_roundtrip(port, payload) == payload
        assert echo_roundtrip(port, b"second") == b"second"
        code, _, err = server.finish(timeout=120)
        assert code == 0, err[-2000:]
    finally:
        server.kill()


def test_js_client_allowed_denied_and_without_capability(js_net: Path) -> None:
    native = NativeServer()
    try:
        target = f"127.0.0.1:{native.port}"
        allowed = run_capsock("run", f"--allow-outbound=tcp://{target}", str(js_net),
                              "client", target, "hello from js", timeout=300)
        assert allowed.returncode == 0, allowed.stderr[-2000:]
        assert allowed.stdout.strip() == "HELLO FROM JS"
        assert len(native.connections) == 1
        other = run_capsock("run", "--allow-outbound=tcp://127.0.0.1:1", str(js_net),
                            "client", target, "x", timeout=300)
        assert other.returncode != 0 and "error: access-denied" in other.stderr
        nothing = run_capsock("run", str(js_net), "client", target, "x", timeout=300)
        assert nothing.returncode != 0 and "error: no-network" in nothing.stderr
        time.sleep(0.3)  # the native server's accept loop polls every 0.2 s
        assert len(native.connections) == 1  # the denied clients never reached it
    finally:
        native.close()


@pytest.mark.parametrize("backend", ["os", "memory"])
def test_js_guest_passes_the_capsock_net_cases_it_implements(js_net: Path,
                                                             backend: str) -> None:
    results = run_all(js_net, peers_factory(backend), lambda case: case.kind in JS_KINDS)
    ran = [r for r in results if not r.skipped]
    failed = [f"{r.case.id}: expected {r.expected}, got {r.got}" for r in ran if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(ran) >= 40
    assert {r.case.kind for r in ran} == JS_KINDS
    assert sum(r.expected == "access-denied" for r in ran) >= 10
    assert len([c for c in CASES if c.kind in JS_KINDS]) == len(results)


