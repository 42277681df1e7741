"""Socket activation: systemd's own `systemd-socket-activate` in front of
`capsock run` / `capsock serve`, with real guests and real clients.

systemd-socket-activate (Debian package `systemd`) opens the socket,
waits for the first connection or datagram, and executes capsock with it
as fd 3 and LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES set, as a socket unit
does. The refusals (a socket that is not what a pre-open must be) are
checked with the sockets systemd-socket-activate can make (a SEQPACKET,
a UNIX socket) and, for the cases it cannot (a connected stream), with a
shell that sets LISTEN_PID to its own pid and executes capsock with a
real socket as fd 3.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from capsock.runtime.activation import ActivationError, inherited_sockets

from ..conftest import capsock_command, capsock_env
from .helpers import TIMEOUT, Running, echo_over, echo_roundtrip, free_port


def activate(*flags: str) -> list[str]:
    """The systemd-socket-activate command line. It gives the child only
    the variables it is told to (-E): this checkout's PYTHONPATH, HOME and
    the compile cache's location."""
    path = shutil.which("systemd-socket-activate")
    if path is None:
        pytest.fail("systemd-socket-activate not found: install it "
                    "(apt-get install -y systemd); .ci/run does this on CI")
    env = capsock_env()
    passed = [f"--setenv={name}={env[name]}" for name in ("PYTHONPATH", "HOME", "PATH",
                                                            "CAPSOCK_CACHE_DIR") if name in env]
    return [path, *passed, *flags]


class Launched(Running):
    """A `capsock` process started through a launcher command `prefix`."""

    def __init__(self, prefix: list[str], *args: str, pass_fds: tuple[int, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen([*prefix, *capsock_command(*args)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env or capsock_env(), pass_fds=pass_fds)
        self.lines = []
        self._stderr = []
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()


def launcher_listens(app: Launched) -> None:
    """Wait for systemd-socket-activate's "Listening on ..." (stderr)."""
    deadline = time.monotonic() + TIMEOUT
    while not any(line.startswith("Listening on") for line in list(app._stderr)):
        assert time.monotonic() < deadline, app._stderr
        assert app.process.poll() is None, app._stderr
        time.sleep(0.02)


def connect_when_listening(port: int) -> socket.socket:
    """A connection to the launcher's socket (it listens before exec)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_tcp_listener_from_systemd_socket_activate(guests: dict[str, Path]) -> None:
    """The guest serves the socket systemd opened, under its fd name."""
    port = free_port()
    app = Launched(activate("-l", f"127.0.0.1:{port}", "--fdname=web"),
                   "run", str(guests["echo"]), "--max-connections", "1")
    try:
        with connect_when_listening(port) as conn:  # starts capsock, queued meanwhile
            assert app.wait_for("listening on") == f"listening on 127.0.0.1:{port}"
            assert "pre-open web" in app.lines
            assert echo_over(conn, b"activated " * 1000, TIMEOUT) == b"activated " * 1000
        code, out, err = app.finish()
        assert code == 0, err
        assert "echoed 10000 bytes" in out
    finally:
        app.kill()


def test_udp_socket_from_systemd_socket_activate(guests: dict[str, Path]) -> None:
    """A datagram socket (--datagram) is a UDP pre-open named by --fdname."""
    port = free_port()
    app = Launched(activate("--datagram", "-l", f"127.0.0.1:{port}",
                    "--fdname=dns"), "run", str(guests["udpecho"]), "--max-datagrams", "2")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT)
            launcher_listens(app)  # then the datagram waits in its queue
            client.sendto(b"first", ("127.0.0.1", port))  # starts capsock
            data, _ = client.recvfrom(100)
            assert data == b"first"
            client.sendto(b"second", ("127.0.0.1", port))
            assert client.recvfrom(100)[0] == b"second"
        code, out, err = app.finish()
        assert code == 0, err
        assert "pre-open dns" in out.splitlines() + app.lines
    finally:
        app.kill()


def test_serve_behind_systemd_socket_activate(guests: dict[str, Path]) -> None:
    """`capsock serve` (2 forked instances) on systemd's socket; SIGTERM
    (what systemd sends to stop the service) ends it cleanly."""
    port = free_port()
    app = Launched(activate("-l", f"127.0.0.1:{port}", "--fdname=web"),
                   "serve", "--instances", "2", str(guests["echo"]))
    try:
        with connect_when_listening(port) as conn:
            app.wait_for("listening on")
            assert echo_over(conn, b"served " * 500, TIMEOUT) == b"served " * 500
        for index in range(3):
            payload = f"round {index} ".encode() * 200
            assert echo_roundtrip(port, payload) == payload
        app.process.send_signal(signal.SIGTERM)  # exec kept the pid: this is capsock
        code, _, err = app.finish()
        assert code == 0, err
        assert "serving echo.wasm on web with 2 process instance(s)" in err
    finally:
        app.kill()


def test_two_sockets_named_in_order(guests: dict[str, Path]) -> None:
    """Two sockets, two names (LISTEN_FDNAMES=a:b); the echo guest takes
    the first TCP listener, named by its fd name."""
    port, other = free_port(), free_port()
    app = Launched(activate("-l", f"127.0.0.1:{port}", "-l", f"127.0.0.1:{other}",
                    "--fdname=first:second"), "run", str(guests["echo"]),
                   "--max-connections", "1")
    try:
        with connect_when_listening(port) as conn:
            app.wait_for("listening on")
            assert "pre-open first" in app.lines
            assert echo_over(conn, b"x", TIMEOUT) == b"x"
        assert app.finish()[0] == 0
    finally:
        app.kill()


def test_a_unix_socket_is_a_startup_error(guests: dict[str, Path], tmp_path: Path) -> None:
    """A socket unit with ListenStream=/path passes an AF_UNIX socket:
    capsock names it and refuses to start (no guest runs)."""
    path = str(tmp_path / "s.sock")
    app = Launched(activate("-l", path, "--fdname=bad"), "run", str(guests["echo"]))
    try:
        deadline = time.monotonic() + TIMEOUT
        while app.process.poll() is None and time.monotonic() < deadline:
            try:  # the connection starts capsock
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                    conn.settimeout(1.0)
                    conn.connect(path)
                    conn.recv(1)
            except OSError:
                time.sleep(0.1)
        code, out, err = app.finish()
        assert code == 2, (out, err)
        assert ("capsock: error: socket activation: fd 3 ('bad'): a AF_UNIX socket; "
                "capsock pre-opens IPv4 and IPv6 sockets only") in err
        assert "listening on" not in out
    finally:
        app.kill()


#: A launcher in a few lines: fd argv[1] becomes fd 3, LISTEN_PID our own
#: pid (exec keeps it) unless argv[2] names one, then exec the rest.
LAUNCHER = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = sys.argv[2] or str(os.getpid())
if sys.argv[3]:
    os.environ["LISTEN_FDNAMES"] = sys.argv[3]
os.execv(sys.argv[4], sys.argv[4:])
"""


def exec_with_fd3(sock: socket.socket, *args: str, fdnames: str | None = "given",
                  pid: str = "") -> Launched:
    """capsock started with `sock` as fd 3 and LISTEN_PID its pid, as a
    launcher does (for sockets systemd-socket-activate cannot make)."""
    return Launched([sys.executable, "-c", LAUNCHER, str(sock.fileno()), pid, fdnames or ""],
                    *args, pass_fds=(sock.fileno(),))


def finish_with_fd3(sock: socket.socket, *args: str, fdnames: str | None = "given",
                    pid: str = "") -> tuple[int, str, str]:
    """`exec_with_fd3` run to its end: (exit code, stdout, stderr)."""
    app = exec_with_fd3(sock, *args, fdnames=fdnames, pid=pid)
    try:
        return app.finish()
    finally:
        app.kill()


def test_a_connected_stream_is_refused(guests: dict[str, Path]) -> None:
    """SO_ACCEPTCONN: a TCP socket that is not listening is no listener."""
    with socket.create_server(("127.0.0.1", 0)) as server, \
            socket.create_connection(server.getsockname()) as conn:
        code, out, err = finish_with_fd3(conn, "run", str(guests["echo"]))
    assert code == 2, (out, err)
    assert "socket activation: fd 3 ('given'): a TCP socket that is not listening" in err


def test_an_unbound_datagram_socket_is_refused(guests: dict[str, Path]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unbound:
        code, out, err = finish_with_fd3(unbound, "run", str(guests["udpecho"]))
    assert code == 2, (out, err)
    assert "socket activation: fd 3 ('given'): a UDP socket that is not bound" in err


def test_another_pids_sockets_are_not_taken(guests: dict[str, Path]) -> None:
    """LISTEN_PID of another process: the variables were inherited by
    accident, so the guest gets no pre-open (and the echo says so)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        code, _, err = finish_with_fd3(server, "run", str(guests["echo"]), pid="1")
    assert code == 1
    assert "no pre-opened TCP listener" in err


def test_no_socket_activation_ignores_them(guests: dict[str, Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        code, _, err = finish_with_fd3(server, "run", "--no-socket-activation", str(guests["echo"]))
    assert code == 1
    assert "no pre-opened TCP listener" in err


def test_serve_shares_it_and_leaves_it_listening(guests: dict[str, Path]) -> None:
    """`capsock serve` hands the inherited listener to every instance; a
    graceful stop leaves it listening for the launcher's next start (a
    socket unit keeps it across service restarts)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        port = server.getsockname()[1]
        app = exec_with_fd3(server, "serve", "--instances", "2", "--mode", "thread",
                            "--grace", "5", str(guests["echo"]), fdnames=None)
        try:
            app.wait_for("listening on")
            for index in range(4):
                payload = f"instance round {index} ".encode() * 100
                assert echo_roundtrip(port, payload) == payload
            app.process.send_signal(signal.SIGTERM)
            code, _, err = app.finish()
            assert code == 0, err
            assert "serving echo.wasm on 127.0.0.1:" in err  # named by its address
        finally:
            app.kill()
        # Still the launcher's listening socket: a connection queues on it.
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
            server.settimeout(TIMEOUT)
            accepted, _ = server.accept()
            accepted.close()


# -- the parsing, on real descriptors ------------------------------------------------


def _at_fd3(sock: socket.socket) -> int:
    """Put a dup of `sock` at fd 3 of this process (what a launcher does)."""
    os.dup2(sock.fileno(), 3)
    return 3


def test_variables_are_unset_and_the_descriptor_close_on_exec() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        saved = os.dup(3) if _is_open(3) else None
        try:
            _at_fd3(server)
            os.set_inheritable(3, True)
            environ = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid()),
                       "LISTEN_FDNAMES": "web", "OTHER": "kept"}
            taken = inherited_sockets(environ)
            assert environ == {"OTHER": "kept"}
            assert [(s.name, s.protocol, s.ipv6, s.fd) for s in taken] == [
                ("web", "tcp", False, 3)]
            assert not os.get_inheritable(3)
            taken[0].sock.detach()
        finally:
            if saved is not None:
                os.dup2(saved, 3)
                os.close(saved)
            else:
                os.close(3)


def test_malformed_variables_are_errors() -> None:
    pid = str(os.getpid())
    with pytest.raises(ActivationError, match="LISTEN_FDNAMES='a:b' names 2"):
        inherited_sockets({"LISTEN_FDS": "1", "LISTEN_PID": pid, "LISTEN_FDNAMES": "a:b"})
    with pytest.raises(ActivationError, match="LISTEN_FDS='x'"):
        inherited_sockets({"LISTEN_FDS": "x", "LISTEN_PID": pid})
    with pytest.raises(ActivationError, match="LISTEN_PID=None"):
        inherited_sockets({"LISTEN_FDS": "1"})
    assert inherited_sockets({"LISTEN_FDS": "1", "LISTEN_PID": "1"}) == []
    assert inherited_sockets({}) == []


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_the_memory_backend_refuses_them(guests: dict[str, Path]) -> None:
    """Inherited sockets are OS sockets: a virtual network cannot serve them."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        code, _, err = finish_with_fd3(server, "run", "--backend", "memory", str(guests["echo"]))
    assert code == 2
    assert "--backend memory cannot use them (use --no-socket-activation)" in err


def test_ipv6_without_a_name_is_named_by_its_address(guests: dict[str, Path]) -> None:
    """No LISTEN_FDNAMES: the pre-open is named by its bound address, as a
    --tcplisten one is; IPv6 in brackets."""
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as server:
        port = server.getsockname()[1]
        app = exec_with_fd3(server, "run", str(guests["echo"]), "--max-connections", "1",
                            fdnames=None)
        try:
            assert app.wait_for("listening on") == f"listening on [::1]:{port}"
            assert f"pre-open [::1]:{port}" in app.lines
            assert echo_roundtrip(port, b"six", host="::1") == b"six"
            assert app.finish()[0] == 0
        finally:
            app.kill()
