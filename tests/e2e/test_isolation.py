"""Tenant isolation: two instances in one process share nothing a guest can name.

Tenant A (the hostile guest's `tenant` mode) holds a listener, a UDP
socket and pollables, prints every raw handle number it has, and waits for
a connection. Tenant B, run meanwhile on the same `Host` in the same
process (what `capsock serve --mode thread` does), tries each of them
(`forge`) as a forged resource object. Handles live in each instance's own
wasmtime store and capsock `HandleTable`; since contract 0.2.0 no call
takes an id (poll and splice take borrowed handles), so there is no id to
forge.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from capsock import AuditLog, Host, Limits, Policy

LOCAL = ["tcp://127.0.0.1:*", "udp://127.0.0.1:*"]


def wait_for(path: Path, word: str, thread: threading.Thread) -> list[str]:
    """The lines of `path` once one starts with `word` (the guest is ready)."""
    deadline = time.monotonic() + 600  # loading may compile the component first
    while time.monotonic() < deadline and thread.is_alive():
        lines = path.read_text().splitlines()
        if any(line.startswith(word) for line in lines):
            return lines
        time.sleep(0.05)
    raise AssertionError(f"tenant never printed {word!r}: {path.read_text()!r}")


@contextmanager
def tenant_a(host: Host, wasm: Path, tmp_path: Path, pollables: int = 5
             ) -> Iterator[tuple[int, list[int]]]:
    """Run tenant A in a thread: (its listener's port, its handle numbers).
    On exit, connect to its listener so it finishes, and check it did."""
    out = tmp_path / "a.txt"
    out.write_text("")
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(host.run(wasm, ["tenant", str(pollables)], stdout=out)))
    thread.start()
    lines = wait_for(out, "handles", thread)
    fields = {line.split()[0]: line.split()[1] for line in lines}
    port = int(fields["port"])
    try:
        yield port, [int(h) for h in fields["handles"].split(",")]
    finally:
        # A still works after everything B tried: it accepts this connection.
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        thread.join(60)
    assert codes == [0]
    assert out.read_text().splitlines()[-1] == "accepted"


def test_a_tenant_cannot_reach_anothers_handles(guests: dict[str, Path],
                                                tmp_path: Path) -> None:
    host = Host(policy=Policy.from_flags(allow_outbound=LOCAL, allow_inbound=LOCAL))
    wasm = guests["hostile"]
    with tenant_a(host, wasm, tmp_path, pollables=20) as (port, handles):
        assert len(handles) == 22
        # Every one of A's handle numbers, one run of B each: a forged
        # handle B's store does not hold traps B, which ends that run.
        for number in handles:
            out = tmp_path / f"b{number}.txt"
            code = host.run(wasm, ["forge", str(number)], stdout=out)
            lines = out.read_text().splitlines()
            assert lines[0] == f"handle {number}: forged"
            if code == 1:  # the component model refused the index: a trap
                assert lines[1:] == []
            else:  # the index names one of B's own handles (its socket), never A's
                assert code == 0 and lines[-1] == "done"
                assert str(port) not in lines[1]


def test_a_tenants_quota_is_its_own(guests: dict[str, Path], tmp_path: Path) -> None:
    """A holds 2 of its 5 sockets; B, on the same Host, still gets all 5 of
    its own, and B's limit line carries B's instance id, not A's."""
    log = AuditLog(tmp_path / "audit.jsonl")
    host = Host(policy=Policy.from_flags(allow_outbound=LOCAL, allow_inbound=LOCAL),
                limits=Limits(max_sockets=5), audit_log=log)
    wasm = guests["hostile"]
    with tenant_a(host, wasm, tmp_path, pollables=1):
        out = tmp_path / "b.txt"
        assert host.run(wasm, ["hold", "udp", "50"], stdout=out) == 0
        assert out.read_text().splitlines() == ["held 5", "result: limit-reached"]
    log.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    [limit] = [r for r in records if r["operation"] == "limit"]
    binds = {r["instance"] for r in records if r["operation"] == "bind"}
    assert limit["instance"] not in binds  # A bound; B only hit its limit
