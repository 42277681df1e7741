"""Ceilings on what one guest costs the host process (SECURITY.md 5 and 9).

Memory is measured, not timed: each `capsock` runs as a child whose own
peak resident size (`ru_maxrss`, from `wait4` on that child alone) is
compared with a baseline run of the same guest doing nothing.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from ..conftest import capsock_command, capsock_env

MIB = 1 << 20
ALLOW = "--allow-outbound=tcp://127.0.0.1:*"


def measured(*args: str, preexec: Callable[[], None] | None = None
             ) -> tuple[int, list[str], str, int]:
    """Run `capsock ARGS`: (exit code, stdout lines, stderr, peak RSS in bytes).

    Both pipes are drained by threads, then the child is reaped with
    `wait4`, whose rusage is that child's alone (RUSAGE_CHILDREN would be
    the largest of every child this test process ever had)."""
    process = subprocess.Popen(capsock_command(*args), stdin=subprocess.DEVNULL,
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
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    process.stderr.close()
    return (process.returncode, chunks.get(0, b"").decode().splitlines(),
            chunks.get(1, b"").decode(), usage.ru_maxrss * 1024)  # Linux: KiB


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
