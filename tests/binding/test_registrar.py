"""Linking refuses missing names up front; unexpected host errors become
`unknown` for the guest instead of crashing the host."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from wasmtime import Engine
from wasmtime.component import Linker

from capsock import Host, Policy
from capsock.backends.os import OsBackend, OsStreamSocket
from capsock.binding.handles import HandleTable
from capsock.binding.interfaces import interfaces_for
from capsock.binding.interfaces.socket_tcp import SocketTcp
from capsock.binding.registrar import VERSION, LinkError, VersionError, link
from capsock.core.context import InstanceContext
from capsock.runtime.cache import load_component
from capsock.toolchain.tools import find_tool

from ..conftest import capsock_command, capsock_env
from ..e2e.helpers import NativeServer


class _MissingNetwork(SocketTcp):
    network = None  # type: ignore[assignment]


def test_link_lists_every_missing_function(guests: dict[str, Path]) -> None:
    engine = Engine()
    component = load_component(engine, guests["client"])
    context = InstanceContext(Policy.deny_all(), OsBackend())
    interfaces: dict[str, Any] = interfaces_for(context)
    interfaces["socket-tcp"] = _MissingNetwork(context)
    del interfaces["ip-resolve-address"]
    linker = Linker(engine)
    linker.add_wasip2()
    with pytest.raises(LinkError) as raised:
        link(linker, engine, component, interfaces, HandleTable())
    message = str(raised.value)
    assert "capsock:net/socket-tcp@0.2.0#network" in message
    assert "interface capsock:net/ip-resolve-address@0.2.0" in message


#: A minimal command component importing one function of capsock:net@0.1.0
#: (the contract before the core/extension split).
OLD_CONTRACT_WAT = """(component
  (import "capsock:net/socket@0.1.0" (instance $net
    (export "preopened-sockets" (func (result (list string))))))
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.9" (instance $cli)))
"""


def test_a_guest_built_against_0_1_0_is_refused_with_a_rebuild_message(tmp_path: Path) -> None:
    wat, wasm = tmp_path / "old.wat", tmp_path / "old.wasm"
    wat.write_text(OLD_CONTRACT_WAT)
    subprocess.run([find_tool("wasm-tools"), "parse", str(wat), "-o", str(wasm)], check=True)
    engine = Engine()
    context = InstanceContext(Policy.deny_all(), OsBackend())
    with pytest.raises(VersionError) as raised:
        link(Linker(engine), engine, load_component(engine, wasm), interfaces_for(context),
             HandleTable())
    assert "capsock:net@0.1.0" in str(raised.value) and "rebuild" in str(raised.value)
    done = subprocess.run(capsock_command("run", str(wasm)), capture_output=True, text=True,
                          env=capsock_env(), timeout=120)
    assert done.returncode == 2
    assert ("built against capsock:net@0.1.0, but this capsock implements "
            f"capsock:net@{VERSION}: rebuild the guest with this capsock") in done.stderr


class _ExplodingSocket(OsStreamSocket):
    def connect(self, address: Any) -> None:
        raise RuntimeError("backend bug")


class _ExplodingBackend(OsBackend):
    def tcp_socket(self, ipv6: bool) -> OsStreamSocket:
        return _ExplodingSocket(super().tcp_socket(ipv6).raw)


def test_unexpected_backend_error_becomes_unknown(guests: dict[str, Path],
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    server = NativeServer()
    try:
        policy = Policy.from_flags(allow_outbound=[f"tcp://127.0.0.1:{server.port}"])
        host = Host(policy=policy, backend=_ExplodingBackend())
        code = host.run(guests["client"], [f"127.0.0.1:{server.port}", "hi"])
        assert code == 1
        assert "error: unknown" in capfd.readouterr().err
        # the host survived: the same Host runs the guest again
        assert host.run(guests["client"], [f"127.0.0.1:{server.port}", "hi"]) == 1
    finally:
        server.close()


def test_unexpected_errors_are_logged_within_a_budget(guests: dict[str, Path], tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A guest that finds a path to the unexpected-error branch cannot flood
    stderr by repeating it: the first tracebacks are logged, then a trickle
    (issue 15, defect 7; `capsock._log.LineBudget`)."""
    from capsock._log import LINES_BURST, LINES_PER_SECOND

    policy = Policy.from_flags(allow_outbound=["tcp://127.0.0.1:9"])
    host = Host(policy=policy, backend=_ExplodingBackend())
    started = time.monotonic()
    assert host.run(guests["hostile"], ["deny-flood", "3000", "127.0.0.1:9"],
                    stdout=tmp_path / "out.txt") == 0
    elapsed = time.monotonic() - started
    assert (tmp_path / "out.txt").read_text().split() == ["codes", "unknown=3000"]
    unexpected = [r for r in caplog.records if r.getMessage().startswith(
        "capsock: unexpected error in")]
    assert LINES_BURST <= len(unexpected) <= LINES_BURST + LINES_PER_SECOND * (elapsed + 1)
    assert all(r.exc_info for r in unexpected)  # each one logged is a whole traceback
