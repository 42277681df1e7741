"""Linking refuses missing names up front; unexpected host errors become
`unknown` for the guest instead of crashing the host."""

from __future__ import annotations

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
from capsock.binding.registrar import LinkError, link
from capsock.core.context import InstanceContext
from capsock.runtime.cache import load_component

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
    assert "capsock:net/socket-tcp@0.1.0#network" in message
    assert "interface capsock:net/ip-resolve-address@0.1.0" in message


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
