"""The kv app driven by the real redis-cli and redis-benchmark: every
command's reply, pipelining, inline commands, expiry, and the append-only
file surviving a restart (even a SIGKILL) and a torn last record."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .apps import run_tool, start_app
from .helpers import Running

Cli = Callable[..., str]


@pytest.fixture(scope="module")
def kv(guests: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    data = tmp_path_factory.mktemp("kv")
    app, port = start_app(guests["kv"], "--tcplisten", "127.0.0.1:0", "--dir", f"{data}::/data")
    try:
        yield port
    finally:
        app.kill()


def cli(port: int, *args: str) -> str:
    """One redis-cli command; its reply in redis-cli's typed form
    (``(integer) 1``, ``(nil)``, ``"v"``, ``(error) ERR ...``)."""
    done = run_tool("redis-cli", "-h", "127.0.0.1", "-p", str(port), "--no-raw", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def call(kv: int) -> Iterator[Cli]:
    """A `cli` bound to the module's server, on an empty database."""
    assert cli(kv, "flushdb") == "OK"

    def bound(*args: str) -> str:
        return cli(kv, *args)
    yield bound


def test_ping_echo(call: Cli) -> None:
    assert call("ping") == "PONG"
    assert call("ping", "hello") == '"hello"'
    assert call("echo", "two words") == '"two words"'
    assert call("echo", "a\nb") == '"a\\nb"'


def test_set_get_del_exists(call: Cli) -> None:
    assert call("get", "k") == "(nil)"
    assert call("set", "k", "v") == "OK"
    assert call("get", "k") == '"v"'
    assert call("set", "k", "v2", "GET") == '"v"'
    assert call("set", "k", "x", "NX") == "(nil)"
    assert call("set", "other", "x", "XX") == "(nil)"
    assert call("set", "other", "y", "NX") == "OK"
    assert call("set", "other", "z", "XX") == "OK"
    assert call("exists", "k", "other", "k", "none") == "(integer) 3"
    assert call("del", "k", "none", "other") == "(integer) 2"
    assert call("exists", "k") == "(integer) 0"
    assert call("set", "k", "v", "EX", "10", "PX", "5") == "(error) ERR syntax error"
    assert call("set", "k", "v", "BOGUS") == "(error) ERR syntax error"


def test_binary_safe_values(kv: int) -> None:
    value = bytes(range(256)) * 4
    with socket.create_connection(("127.0.0.1", kv), timeout=30) as conn:
        conn.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbin\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$3\r\nbin\r\n"
                     % (len(value), value))
        expected = b"+OK\r\n$%d\r\n%s\r\n" % (len(value), value)
        reply = b""
        while len(reply) < len(expected):
            reply += conn.recv(65536)
    assert reply == expected


def test_incr(call: Cli) -> None:
    assert call("incr", "n") == "(integer) 1"
    assert call("incr", "n") == "(integer) 2"
    assert call("incrby", "n", "40") == "(integer) 42"
    assert call("decr", "n") == "(integer) 41"
    assert call("get", "n") == '"41"'
    call("set", "s", "abc")
    assert call("incr", "s") == "(error) ERR value is not an integer or out of range"
    call("set", "big", "9223372036854775807")
    assert call("incr", "big") == "(error) ERR increment or decrement would overflow"


def test_expire_ttl(call: Cli) -> None:
    call("set", "k", "v")
    assert call("ttl", "k") == "(integer) -1"
    assert call("ttl", "missing") == "(integer) -2"
    assert call("expire", "k", "100") == "(integer) 1"
    assert call("ttl", "k") in ("(integer) 100", "(integer) 99")
    assert call("expire", "missing", "100") == "(integer) 0"
    assert call("set", "e", "v", "EX", "50") == "OK"
    assert call("ttl", "e") in ("(integer) 50", "(integer) 49")
    assert call("set", "p", "v", "PX", "300") == "OK"
    assert 0 < int(call("pttl", "p").split()[-1]) <= 300
    time.sleep(0.6)
    assert call("get", "p") == "(nil)"
    assert call("ttl", "p") == "(integer) -2"
    assert call("persist", "k") == "(integer) 1"
    assert call("ttl", "k") == "(integer) -1"
    assert call("expire", "k", "-1") == "(integer) 1"  # a past time deletes
    assert call("exists", "k") == "(integer) 0"
    assert call("set", "k", "v", "EX", "0") == \
        "(error) ERR invalid expire time in 'set' command"
    assert call("expire", "e", "soon") == "(error) ERR value is not an integer or out of range"


def test_keys_dbsize_flushdb(call: Cli) -> None:
    for key in ("user:1", "user:2", "user:10", "admin", "u*star"):
        call("set", key, "x")
    call("set", "gone", "x", "PX", "1")
    time.sleep(0.05)

    def keys(pattern: str) -> list[str]:
        return sorted(re.findall(r'"([^"]*)"', call("keys", pattern)))
    assert keys("*") == ["admin", "u*star", "user:1", "user:10", "user:2"]
    assert keys("user:?") == ["user:1", "user:2"]
    assert keys("user:[12]*") == ["user:1", "user:10", "user:2"]
    assert keys("user:[^1]") == ["user:2"]
    assert keys("u\\*star") == ["u*star"]
    assert keys("nomatch*") == []
    assert call("dbsize") == "(integer) 5"
    assert call("flushdb") == "OK"
    assert call("dbsize") == "(integer) 0"
    assert call("keys", "*") == "(empty array)"


def test_errors(call: Cli) -> None:
    assert call("nosuchcommand", "a").startswith("(error) ERR unknown command 'nosuchcommand'")
    assert call("get") == "(error) ERR wrong number of arguments for 'get' command"
    assert call("set", "k") == "(error) ERR wrong number of arguments for 'set' command"


def test_redis_cli_from_stdin_and_inline_commands(kv: int) -> None:
    done = run_tool("redis-cli", "-p", str(kv), stdin="set a 1\nincr a\nget a\n")
    assert done.returncode == 0 and done.stdout.split() == ["OK", "2", "2"], done
    with socket.create_connection(("127.0.0.1", kv), timeout=30) as conn:
        conn.sendall(b'PING\r\nECHO "quoted \\"text\\""\r\nSET k \'single q\'\r\nGET k\r\n')
        expected = b'+PONG\r\n$13\r\nquoted "text"\r\n+OK\r\n$8\r\nsingle q\r\n'
        reply = b""
        while len(reply) < len(expected):
            reply += conn.recv(65536)
    assert reply == expected


def test_pipelining_one_write_many_replies(kv: int) -> None:
    requests = b"".join(b"*3\r\n$3\r\nSET\r\n$4\r\np%03d\r\n$1\r\n%d\r\n" % (i, i % 10)
                        for i in range(200))
    requests += b"*2\r\n$6\r\nEXISTS\r\n$4\r\np199\r\n"
    with socket.create_connection(("127.0.0.1", kv), timeout=30) as conn:
        conn.sendall(requests)
        expected = b"+OK\r\n" * 200 + b":1\r\n"
        reply = b""
        while len(reply) < len(expected):
            reply += conn.recv(65536)
    assert reply == expected


def test_protocol_error_closes(kv: int) -> None:
    with socket.create_connection(("127.0.0.1", kv), timeout=30) as conn:
        conn.sendall(b"*1\r\n+PING\r\n")
        reply = b"".join(iter(lambda: conn.recv(65536), b""))
    assert reply.startswith(b"-ERR Protocol error")


def test_redis_benchmark_completes_without_errors(kv: int) -> None:
    done = run_tool("redis-benchmark", "-h", "127.0.0.1", "-p", str(kv), "-q", "-n", "2000",
                    "-t", "set,get", timeout=240)
    output = done.stdout.replace("\r", "\n")
    assert done.returncode == 0, (output, done.stderr)
    rates = dict(re.findall(r"^(SET|GET): ([\d.]+) requests per second", output, re.M))
    assert set(rates) == {"SET", "GET"}, output
    assert all(float(rate) > 0 for rate in rates.values())
    assert "error" not in (output + done.stderr).lower()
    assert "WARNING" not in done.stderr  # CONFIG GET answered


def test_redis_benchmark_pipelined(kv: int) -> None:
    done = run_tool("redis-benchmark", "-h", "127.0.0.1", "-p", str(kv), "-q", "-n", "5000",
                    "-P", "16", "-t", "set,get", timeout=240)
    output = done.stdout.replace("\r", "\n")
    assert done.returncode == 0 and "error" not in output.lower(), output
    assert len(re.findall(r"^(SET|GET): [\d.]+ requests per second", output, re.M)) == 2


def _start(wasm: Path, data: Path) -> tuple[Running, int]:
    return start_app(wasm, "--tcplisten", "127.0.0.1:0", "--dir", f"{data}::/data")


def test_data_survives_a_restart(guests: dict[str, Path], tmp_path: Path) -> None:
    app, port = _start(guests["kv"], tmp_path)
    try:
        assert cli(port, "set", "kept", "value 1") == "OK"
        assert cli(port, "set", "ttl", "v", "EX", "1000") == "OK"
        assert cli(port, "set", "short", "v", "PX", "400") == "OK"
        assert cli(port, "set", "deleted", "v") == "OK"
        assert cli(port, "del", "deleted") == "(integer) 1"
        for _ in range(3):
            cli(port, "incr", "counter")
        assert cli(port, "expire", "counter", "2000") == "(integer) 1"
        assert cli(port, "incr", "counter") == "(integer) 4"  # keeps its TTL
    finally:
        app.kill()  # SIGKILL: acknowledged writes must already be in the file
    assert (tmp_path / "kv.aof").stat().st_size > 0
    time.sleep(0.5)  # "short" expires while the server is down
    app, port = _start(guests["kv"], tmp_path)
    try:
        assert any("replayed" in line for line in app.lines), app.lines
        assert cli(port, "get", "kept") == '"value 1"'
        assert cli(port, "get", "deleted") == "(nil)"
        assert cli(port, "get", "short") == "(nil)"
        assert cli(port, "get", "counter") == '"4"'
        assert 1900 < int(cli(port, "ttl", "counter").split()[-1]) <= 2000
        assert 900 < int(cli(port, "ttl", "ttl").split()[-1]) <= 1000  # absolute, not reset
        assert cli(port, "dbsize") == "(integer) 3"
        assert cli(port, "bgrewriteaof").startswith("Background append only file")
    finally:
        app.kill()
    app, port = _start(guests["kv"], tmp_path)  # the rewritten file replays the same
    try:
        assert cli(port, "get", "kept") == '"value 1"'
        assert cli(port, "get", "counter") == '"4"'
        assert cli(port, "dbsize") == "(integer) 3"
    finally:
        app.kill()


def test_torn_last_record_is_cut_off(guests: dict[str, Path], tmp_path: Path) -> None:
    aof = tmp_path / "kv.aof"
    aof.write_bytes(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n"
                    b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$5\r\nhal")  # a crash mid-write
    app, port = _start(guests["kv"], tmp_path)
    try:
        assert any("torn tail" in line for line in app.lines), app.lines
        assert cli(port, "get", "a") == '"1"'
        assert cli(port, "get", "b") == "(nil)"
        assert cli(port, "set", "c", "3") == "OK"
    finally:
        app.kill()
    app, port = _start(guests["kv"], tmp_path)
    try:
        assert cli(port, "get", "c") == '"3"'  # appended after the cut, not after the junk
        assert cli(port, "dbsize") == "(integer) 2"
    finally:
        app.kill()


def test_needs_a_data_directory(guests: dict[str, Path]) -> None:
    app = Running("run", "--tcplisten", "127.0.0.1:0", str(guests["kv"]))
    code, _out, err = app.finish()
    assert code != 0 and "--dir" in err
