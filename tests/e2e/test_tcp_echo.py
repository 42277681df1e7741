"""The echo guest serves real native clients through a pre-opened listener."""

from __future__ import annotations

import os
from pathlib import Path

from .helpers import Running, echo_roundtrip


def test_echo_preopened_listener_serves_three_clients(guests: dict[str, Path]) -> None:
    echo = Running("run", "--tcplisten", "127.0.0.1:0", str(guests["echo"]),
                   "--max-connections", "3")
    try:
        line = echo.wait_for("listening on ")
        port = int(line.rsplit(":", 1)[1])
        big = os.urandom(1 << 20)
        assert echo_roundtrip(port, big) == big
        assert echo_roundtrip(port, b"second") == b"second"
        assert echo_roundtrip(port, b"") == b""
        code, out, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
    served = [line for line in echo.lines + out.splitlines() if line.startswith("connection ")]
    assert len(served) == 3
    assert f"echoed {1 << 20} bytes" in served[0]


def test_echo_binds_itself_when_allowed(guests: dict[str, Path]) -> None:
    echo = Running("run", "--allow-inbound=tcp://127.0.0.1:*", str(guests["echo"]),
                   "127.0.0.1:0", "--max-connections", "1")
    try:
        port = int(echo.wait_for("listening on ").rsplit(":", 1)[1])
        assert echo_roundtrip(port, b"hello capsock") == b"hello capsock"
        code, _, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err


def test_echo_serves_ipv6_preopen(guests: dict[str, Path]) -> None:
    echo = Running("run", "--tcplisten", "[::1]:0", str(guests["echo"]), "--max-connections", "1")
    try:
        line = echo.wait_for("listening on ")
        port = int(line.rsplit(":", 1)[1])
        assert echo_roundtrip(port, b"v6", host="::1") == b"v6"
        code, _, err = echo.finish()
    finally:
        echo.kill()
    assert code == 0, err
