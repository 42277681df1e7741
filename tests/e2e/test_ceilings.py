"""Ceilings on what one guest costs the host process (SECURITY.md 5 and 9).

Memory is measured, not timed: each `capsock` runs as a child whose own
peak resident size (`ru_maxrss`, from `wait4` on that child alone) is
compared with a baseline run of the same guest doing nothing.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from capsock import AuditLog
from capsock.policy import Decision

from ..conftest import capsock_command, capsock_env

MIB = 1 << 20
ALLOW = "--allow-outbound=tcp://127.0.0.1:*"


#: Runs `argv[2:]` as its child and writes that child's peak RSS (KiB) to
#: the file `argv[1]`: the child is forked from this small, freshly exec'd
#: interpreter, not from pytest. Linux carries the RSS a process had before
#: `exec` into its `ru_maxrss`, so a child forked straight from a pytest
#: that has grown to hundreds of MiB reports at least that much, whatever
#: it does itself.
_PEAK_OF_CHILD = """
import os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def measured(*args: str, preexec: Callable[[], None] | None = None
             ) -> tuple[int, list[str], str, int]:
    """Run `capsock ARGS`: (exit code, stdout lines, stderr, peak RSS in bytes).

    Both pipes are drained by threads; the peak is the capsock process's
    own `wait4` rusage, taken by a small intermediate interpreter
    (`_PEAK_OF_CHILD`; `preexec` applies to it, and its limits to capsock)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        command = [sys.executable, "-c", _PEAK_OF_CHILD, str(peak_file),
                   *capsock_command(*args)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=capsock_env(), preexec_fn=preexec)
        chunks: dict[int, bytes] = {}

        def drain(index: int, pipe: IO[bytes]) -> None:
            chunks[index] = pipe.read()

        assert process.stdout is not None and process.stderr is not None
        threads = [threading.Thread(target=drain, args=(i, pipe), daemon=True)
                   for i, pipe in enumerate((process.stdout, process.stderr))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        code = process.wait(300)
        process.stdout.close()
        process.stderr.close()
        peak_kib = int(peak_file.read_text()) if peak_file.is_file() else 0
    return (code, chunks.get(0, b"").decode().splitlines(),
            chunks.get(1, b"").decode(), peak_kib * 1024)  # Linux: KiB


@pytest.fixture(scope="module")
def sink() -> Iterator[int]:
    """A native server that reads and discards everything: its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def discard(conn: socket.socket) -> None:
        with conn:
            while conn.recv(1 << 20):
                pass

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=discard, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="module")
def baseline(guests: dict[str, Path]) -> int:
    """The peak RSS of the hostile guest allocating 1 MiB."""
    code, out, err, peak = measured("run", str(guests["hostile"]), "alloc", "1")
    assert code == 0, err
    assert out == ["allocated 1", "result: ok"]
    return peak


# -- linear memory: --max-memory ------------------------------------------------

def test_guest_memory_stops_at_max_memory(guests: dict[str, Path], baseline: int) -> None:
    """A guest allocating 3 GiB gets MemoryError at --max-memory; the host
    process grows by at most that much (plus slack for the guest's heap
    bookkeeping), and a larger limit lets it take more (the flag is the bound)."""
    code, out, err, peak = measured("run", f"--max-memory={64 * MIB}", str(guests["hostile"]),
                                    "alloc", "3000")
    assert code == 0, err
    assert out[1] == "result: memory-error"
    small = int(out[0].split()[1])
    assert 16 <= small < 64
    assert peak - baseline < 64 * MIB
    code, out, err, peak = measured("run", f"--max-memory={160 * MIB}", str(guests["hostile"]),
                                    "alloc", "3000")
    assert out[1] == "result: memory-error"
    assert small + 64 < int(out[0].split()[1]) < 160
    assert peak - baseline < 160 * MIB


def test_a_guest_that_needs_more_than_the_limit_does_not_start(guests: dict[str, Path]) -> None:
    """A Python guest's initial memory is 12.4 MiB: under a 4 MiB limit it is
    refused at instantiation, with a message naming the flag, no traceback."""
    code, out, err, _ = measured("run", f"--max-memory={4 * MIB}", str(guests["hostile"]),
                                 "alloc", "1")
    assert code != 0
    assert out == []
    assert "--max-memory" in err and "Traceback" not in err


def test_max_memory_must_be_positive(guests: dict[str, Path]) -> None:
    code, _, err, _ = measured("run", "--max-memory=0", str(guests["hostile"]), "alloc", "1")
    assert code != 0 and "--max-memory" in err


# -- one call's arguments: --max-call-bytes ---------------------------------------

def test_a_string_over_the_call_cap_is_refused(guests: dict[str, Path], sink: int,
                                               tmp_path: Path) -> None:
    """send-latin1 with a string over --max-call-bytes: limit-reached and an
    audit line; one byte under the cap goes through (capped to max-io-bytes)."""
    audit = tmp_path / "audit.jsonl"
    code, out, err, _ = measured("run", ALLOW, "--max-call-bytes=1000", f"--audit-log={audit}",
                                 str(guests["hostile"]), "send-big", f"127.0.0.1:{sink}",
                                 "501", "latin1")  # 501 x U+00E9 = 1002 UTF-8 bytes
    assert code == 0, err
    assert out == ["result: limit-reached"]
    [limit] = [r for r in map(json.loads, audit.read_text().splitlines())
               if r["operation"] == "limit"]
    assert limit["rule"] == "limit max_call_bytes=1000"
    assert limit["target"] == "call argument of 1002 bytes"
    code, out, err, _ = measured("run", ALLOW, "--max-call-bytes=1000", str(guests["hostile"]),
                                 "send-big", f"127.0.0.1:{sink}", "500", "latin1")
    assert out == ["result: ok 500"], err


def test_a_list_over_the_call_cap_is_refused(guests: dict[str, Path], sink: int) -> None:
    code, out, err, _ = measured("run", ALLOW, "--max-call-bytes=1000", str(guests["hostile"]),
                                 "send-big", f"127.0.0.1:{sink}", "1001", "bytes")
    assert out == ["result: limit-reached"], err
    code, out, err, _ = measured("run", ALLOW, "--max-call-bytes=1000", str(guests["hostile"]),
                                 "send-big", f"127.0.0.1:{sink}", "1000", "bytes")
    assert out == ["result: ok 1000"], err


def test_the_call_cap_saves_the_hosts_copies(guests: dict[str, Path], sink: int) -> None:
    """A 32 Mi-character send-latin1 (64 MiB of UTF-8): refused by a 1 MiB
    cap, the host never decodes it; allowed, the decode and the bytes cost
    it at least another 32 MiB at its peak."""
    args = (str(guests["hostile"]), "send-big", f"127.0.0.1:{sink}", str(32 * MIB), "latin1")
    code, out, err, capped = measured("run", ALLOW, f"--max-call-bytes={MIB}", *args)
    assert out == ["result: limit-reached"], err
    code, out, err, uncapped = measured("run", ALLOW, f"--max-call-bytes={1 << 30}", *args)
    assert out == [f"result: ok {MIB}"], err
    assert uncapped - capped > 32 * MIB


def test_wasmtime_bounds_a_huge_list_before_capsock_sees_it(guests: dict[str, Path],
                                                            sink: int, baseline: int) -> None:
    """wasmtime lifts a list<u8> into ~85 bytes of host memory per byte
    before the callback runs; its hostcall fuel traps a copy past ~4 MiB,
    so the guest traps (a clean exit 1) and the host's peak stays bounded."""
    code, out, err, peak = measured("run", ALLOW, f"--max-call-bytes={1 << 30}",
                                    str(guests["hostile"]), "send-big", f"127.0.0.1:{sink}",
                                    str(8 * MIB), "bytes")
    assert code == 1
    assert out == []
    assert "fuel allocated for hostcalls has been exhausted" in err
    assert peak - baseline < 64 * MIB


# -- process-wide: descriptors (EMFILE) -------------------------------------------

#: An embedder's process with RLIMIT_NOFILE lowered: tenant A holds a
#: listener; B opens UDP sockets until the process runs out of descriptors;
#: then A must still accept, and a third run must get sockets again.
EMBEDDER = """
import resource, socket, sys, threading, time
from pathlib import Path
from capsock import Host, Limits, Policy
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[2]), hard))
local = ["tcp://127.0.0.1:*", "udp://127.0.0.1:*"]
host = Host(policy=Policy.from_flags(allow_outbound=local, allow_inbound=local),
            limits=Limits(max_sockets=100000))
wasm, out = sys.argv[1], Path(sys.argv[3])
a = out / "a.txt"
a.write_text("")
codes = []
thread = threading.Thread(target=lambda: codes.append(host.run(wasm, ["tenant", "1"], stdout=a)))
thread.start()
while "handles" not in a.read_text() and thread.is_alive():
    time.sleep(0.05)
print("b", host.run(wasm, ["hold", "udp", "100000"], stdout=out / "b.txt"), flush=True)
port = int(a.read_text().split()[1])
socket.create_connection(("127.0.0.1", port), timeout=10).close()
thread.join(60)
print("a", codes, flush=True)
print("c", host.run(wasm, ["hold", "tcp", "5"], stdout=out / "c.txt"), flush=True)
"""


def test_running_out_of_descriptors_is_limit_reached(guests: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """EMFILE is `limit-reached` for the guest that hit it (its socket quota
    set beyond the process's RLIMIT_NOFILE of 128): no host error, no
    traceback; the tenant beside it accepts once the descriptors are back,
    and the next instance gets sockets."""
    done = subprocess.run([sys.executable, "-c", EMBEDDER, str(guests["hostile"]), "128",
                           str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env=capsock_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["b 0", "a [0]", "c 0"]
    held, result = (tmp_path / "b.txt").read_text().splitlines()
    assert result == "result: limit-reached"
    assert 50 < int(held.split()[1]) < 128
    assert (tmp_path / "a.txt").read_text().splitlines()[-1] == "accepted"
    assert (tmp_path / "c.txt").read_text().splitlines() == ["held 5"]
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr


# -- process-wide: the audit log's disk --------------------------------------------

def test_a_full_audit_disk_fails_open_and_says_so_once(guests: dict[str, Path],
                                                       sink: int) -> None:
    """--audit-log=/dev/full (every write: ENOSPC): the guest runs to the end
    with its decisions unchanged (allowed sends go out, a denied connect is
    still denied), and the host says once that auditing failed."""
    code, out, err, _ = measured("run", ALLOW, "--audit-log=/dev/full", str(guests["hostile"]),
                                 "hold", "tcp", "20")
    assert code == 0, err
    assert out == ["held 20"]
    code, out, err, _ = measured("run", ALLOW, "--audit-log=/dev/full", str(guests["hostile"]),
                                 "send-big", f"127.0.0.1:{sink}", "5", "latin1")
    assert out == ["result: ok 5"], err
    assert err.count("cannot write") == 1
    code, out, err, _ = measured("run", "--allow-outbound=tcp://127.0.0.1:1",
                                 "--audit-log=/dev/full", str(guests["hostile"]),
                                 "send-big", f"127.0.0.1:{sink}", "5", "latin1")
    assert out == ["result: access-denied"], err  # the denial stands (fails open, not wide)
    assert err.count("cannot write") == 1
    assert "Traceback" not in err


def test_audit_write_failures_are_counted_and_said_once(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """Many decisions on a full disk: every line is counted as lost, the
    error is logged once, and no write raises into the caller."""
    log = AuditLog("/dev/full")
    with caplog.at_level(logging.ERROR, logger="capsock"):
        for port in range(1, 51):
            log.record("1-1", "connect", "tcp", f"127.0.0.1:{port}", Decision(True, "r"))
    log.close()
    assert log.lost == 50
    assert [r.getMessage().count("cannot write") for r in caplog.records] == [1]
