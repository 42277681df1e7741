"""Issue 15, defect 4, through a real guest: with `--peer-address=hidden`
a port scan of the real sender finds nothing and delivers nothing, and the
stand-in the guest was shown answers the sender (the unit-level edges are
in tests/unit/test_hidden_replies.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .helpers import Running

SPAN = 50  # ports scanned on each side of the sender's


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_port_scan_from_a_hidden_mode_guest_finds_nothing(guests: dict[str, Path],
                                                          family: str) -> None:
    ipv6 = family == "ipv6"
    loopback = "::1" if ipv6 else "127.0.0.1"
    bracketed = f"[{loopback}]" if ipv6 else loopback
    with socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET,
                       socket.SOCK_DGRAM) as sender:
        sender.bind((loopback, 0))
        sender.settimeout(10)
        port = sender.getsockname()[1]
        low, high = max(1, port - SPAN), min(65535, port + SPAN)
        guest = Running("run", f"--udpbind={bracketed}:0", "--peer-address=hidden",
                        str(guests["hostile"]), "hidden-scan", bracketed, str(low), str(high))
        try:
            local = guest.wait_for("ready ").split()[-1]
            host, _, guest_port = local.rpartition(":")
            sender.sendto(b"hello", (host.strip("[]"), int(guest_port)))
            shown = guest.wait_for("from ")
            scanned = guest.wait_for("scan ")
            reply = guest.wait_for("reply ")
            # The first datagram the sender gets is the reply: no probe.
            assert sender.recvfrom(100)[0] == b"reply"
            code, _, err = guest.finish()
        finally:
            guest.kill()
    assert code == 0, err
    assert shown == ("from [100::]:0" if ipv6 else "from 192.0.0.8:0")
    # The same outcome for every port, the sender's own included.
    assert scanned == f"scan access-denied={high - low + 1}"
    assert reply == "reply ok"
