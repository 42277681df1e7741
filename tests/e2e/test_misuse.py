"""Handle misuse returns the right error-code and the host keeps running."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import NativeServer, run_capsock


@pytest.fixture
def server() -> NativeServer:
    peer = NativeServer()
    yield peer  # type: ignore[misc]
    peer.close()


def test_accept_on_unbound_socket_is_invalid_state(guests: dict[str, Path]) -> None:
    done = run_capsock("run", "--allow-inbound=tcp://127.0.0.1:*", str(guests["probe"]),
                       "accept-unbound")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["result: invalid-state"]


@pytest.mark.parametrize("probe, expected", [
    ("send-after-shutdown", ["result: ok", "result: invalid-state"]),
    ("connect-twice", ["result: ok", "result: invalid-state"]),
])
def test_misuse_of_connected_socket(guests: dict[str, Path], server: NativeServer,
                                    probe: str, expected: list[str]) -> None:
    done = run_capsock("run", f"--allow-outbound=tcp://127.0.0.1:{server.port}",
                       str(guests["probe"]), probe, f"127.0.0.1:{server.port}")
    assert done.returncode == 0, done.stderr
    results = [line for line in done.stdout.splitlines() if line.startswith("result: ")]
    assert results[-len(expected):] == expected, done.stdout
