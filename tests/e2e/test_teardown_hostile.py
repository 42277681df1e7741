"""Teardown under hostile guests: nothing a guest opened outlives it.

200 in-process runs of a guest that connects, sends half a request,
subscribes, opens a listener and a UDP socket, then dies without closing
anything (an exception, `exit`, or a real wasm trap, in turn). The host
process's descriptors and threads are counted before and after: no growth.
The peer also sees every connection end (EOF), which proves the socket was
closed, not merely forgotten.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

from capsock import Host, Policy, TcpListenSpec

from .peers import Peer, drain

RUNS = 200


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_200_crashing_guests_leave_nothing_behind(guests: dict[str, Path]) -> None:
    peer = Peer(drain)
    try:
        host = Host(policy=Policy.from_flags(allow_outbound=[f"tcp://{peer.address}"],
                                             allow_inbound=["tcp://*:*", "udp://*:*"]),
                    tcp_listen=[TcpListenSpec.parse("127.0.0.1:0")])  # an unclaimed pre-open
        modes = ["raise", "exit", "trap"]
        for how in modes:  # warm-up: compile cache, lazily started threads
            assert host.run(guests["hostile"], ["crash", how, peer.address, "1"]) != 0
        fds, threads, rss = open_fds(), os_threads(), rss_kib()
        py_threads = threading.active_count()
        for i in range(RUNS):
            code = host.run(guests["hostile"], ["crash", modes[i % 3], peer.address, "1"])
            assert code != 0
        assert open_fds() <= fds
        assert os_threads() <= threads
        assert threading.active_count() <= py_threads
        # Bounded, not zero: the allocator keeps freed pages; a leak of one
        # store per run (tens of MiB each) would blow far past this.
        assert rss_kib() - rss < 64 * 1024
        # every connection reached the peer and was closed by the host
        deadline = 50
        while peer.accepted < RUNS + len(modes) and deadline:
            threading.Event().wait(0.1)
            deadline -= 1
        assert peer.accepted == RUNS + len(modes)
        assert not peer.errors
    finally:
        peer.close()


def test_handles_dropped_in_hostile_orders(guests: dict[str, Path], tmp_path: Path) -> None:
    """Children outlive parents, pollables outlive sockets, a listener dies
    with a connection queued: defined results, no trap, nothing left open.

    (A pollable's `ready` after its socket is dropped is conformance case
    `socket.pollable.socket-dropped`; a dropped pollable in `poll` is
    `socket.poll.dropped` and `test_a_dropped_pollable_cannot_be_polled`.)
    """
    peer = Peer(drain)
    try:
        host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:*"],
                                             allow_inbound=["tcp://127.0.0.1:*"]))
        out = tmp_path / "out.txt"
        host.run(guests["hostile"], ["drop-order", peer.address, "127.0.0.1:0"], stdout=out)
        fds = open_fds()
        for _ in range(20):
            assert host.run(guests["hostile"], ["drop-order", peer.address, "127.0.0.1:0"],
                            stdout=out) == 0
        assert open_fds() <= fds
        steps = dict(line.split(": ", 1) for line in out.read_text().splitlines()
                     if line.startswith("step "))
        assert steps == {
            "step socket-after-network-dropped": "ok",  # a socket does not need its network
            "step send-after-network-dropped": "ok",
            "step child-after-listener-dropped": "ok",  # nor an accepted one its listener
            "step child-receive": "ok",
            "step poll-after-socket-dropped": "ok",  # reports ready: the guest wakes up
            "step accept-nothing-pending": "would-block",
        } | {"step peer-of-dropped-listener": steps["step peer-of-dropped-listener"]}
        # The queued connection is reset by the kernel, not left hanging
        # (a send racing the RST may still succeed once).
        assert steps["step peer-of-dropped-listener"] in ("connection-reset", "ok")
        assert out.read_text().splitlines()[-1] == "done"
    finally:
        peer.close()


def test_a_dropped_pollable_cannot_be_polled(guests: dict[str, Path], tmp_path: Path) -> None:
    """`poll` takes borrowed handles, so a guest cannot name a pollable it
    dropped: componentize-py's bindings trap on the dropped handle before
    any host call (the host never sees it), and the host stays usable."""
    peer = Peer(drain)
    try:
        host = Host(policy=Policy.from_flags(allow_outbound=["tcp://127.0.0.1:*"]))
        out = tmp_path / "out.txt"
        fds = open_fds()
        assert host.run(guests["hostile"], ["poll-dropped", peer.address], stdout=out) == 1
        assert not out.read_text().startswith("result:"), out.read_text()
        assert host.run(guests["hostile"], ["send", peer.address, "5"], stdout=out) == 0
        assert out.read_text().splitlines() == ["sent 5"]
        # The peer's drain thread (in this process) closes its side of the
        # "send" connection when it reads EOF, maybe after host.run returns:
        # wait for that (bounded) before comparing descriptor counts.
        deadline = time.monotonic() + 10
        while open_fds() > fds and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_fds() <= fds
    finally:
        peer.close()
