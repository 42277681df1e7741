"""``socket.socketpair()`` in a guest (capsock_guest/_pair.py): a pair in the
guest's memory, on its own, under selectors/select/threads, and waking an
asyncio server's main task while the loop also waits on host sockets; a real
client drives the server. Denied without its rule like any server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .helpers import Running, free_port, run_capsock

PROGRAM = Path(__file__).parent / "programs" / "socketpair_wakeup.py"


@pytest.fixture(scope="module")
def wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("socketpair") / "socketpair_wakeup.wasm"
    done = run_capsock("build", str(PROGRAM), "-o", str(target), timeout=900)
    assert done.returncode == 0, done.stderr
    return target


def test_socketpair_alone_and_waking_an_asyncio_server(wasm: Path) -> None:
    port = free_port()
    server = Running("run", f"--allow-inbound=tcp://127.0.0.1:{port}", str(wasm),
                     "127.0.0.1", str(port))
    try:
        server.wait_for("serving")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"hello\n")
            assert conn.recv(64) == b"hello\n"
            conn.sendall(b"quit\n")
            assert conn.recv(64) == b""  # the handler closed after waking main()
        code, out, err = server.finish(timeout=60)
    finally:
        server.kill()
    assert code == 0, err
    assert server.lines[0].startswith(
        "blocking recv on an empty end: capsock: recv on an empty socketpair end"), server.lines
    assert server.lines[1:3] == ["send after the peer closed: BrokenPipeError", "pair ok"], err
    assert out == "woken by the pair: stop\n", err


def test_socketpair_program_denied_without_its_rule(wasm: Path) -> None:
    done = run_capsock("run", f"--allow-inbound=tcp://127.0.0.1:{free_port()}", str(wasm),
                       "127.0.0.1", str(free_port()))
    assert done.returncode == 1
    assert "pair ok" in done.stdout  # the pair needs no capability
    assert "PermissionError: [Errno" in done.stderr, done.stderr
