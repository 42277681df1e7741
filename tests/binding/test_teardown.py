"""Every socket a guest opened is closed when it ends, pre-opens included."""

from __future__ import annotations

import os
from pathlib import Path

from capsock import Host, Policy, TcpListenSpec

from ..e2e.helpers import NativeServer


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_repeated_runs_leave_no_file_descriptors(guests: dict[str, Path]) -> None:
    server = NativeServer()
    try:
        policy = Policy.from_flags(allow_outbound=[f"tcp://127.0.0.1:{server.port}"])
        host = Host(policy=policy, tcp_listen=[TcpListenSpec.parse("127.0.0.1:0")])
        host.run(guests["client"], [f"127.0.0.1:{server.port}", "warm-up"])
        before = _open_fds()
        for round_ in range(10):
            assert host.run(guests["client"], [f"127.0.0.1:{server.port}", f"r{round_}"]) == 0
        # also a guest that fails mid-way, holding a socket it never closes
        assert host.run(guests["probe"], ["connect-twice", f"127.0.0.1:{server.port}"]) == 0
        assert _open_fds() <= before
        assert len(server.connections) >= 12
    finally:
        server.close()
