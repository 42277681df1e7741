"""The UDP socket state machine, with the checker asked before every syscall.

=============  ==========================================================
state          allowed
=============  ==========================================================
UNBOUND        bind, connect (implicit bind), send to an address
               (implicit bind)
BOUND          connect, send to an address, receive, peek
CONNECTED      connect (another peer), disconnect, send, receive, peek,
               remote-address
CLOSED         nothing (after drop)
=============  ==========================================================

Anything else is `invalid-state` and leaves the state unchanged.

Receiving is where UDP differs from TCP: a bound socket can get datagrams
from anyone, so the core filters them. A datagram is handed to the guest
only if the socket may receive at its local address (a pre-open, or an
`--allow-inbound` rule for the local address) or the guest may send to the
datagram's sender (`--allow-outbound`); any other datagram is consumed and
dropped silently, as a firewall would, and the receive keeps waiting within
the socket's blocking mode and timeout. The check always uses the real
sender, whatever `--peer-address` hides from the guest.

Replies are the UDP counterpart of an accepted TCP connection: a socket may
send to an address it received a datagram from (the most recent
`MAX_REPLY_PEERS` of them) without an `--allow-outbound` rule, so a UDP
server on a pre-opened socket works with no rules at all, as a TCP one
does. A `--deny-outbound` rule still forbids such a reply.

With `--peer-address=hidden` the guest never learns a sender, so it cannot
name one: a reply goes through the stand-in it was shown instead. A send to
`192.0.0.8:0` (`[100::]:0` on IPv6) is a reply to the socket's most recent
sender (of a datagram received, not peeked), the one address the host maps
it back to; and the reply rule applies to nothing else, so a send to a real
address is judged by the outbound rules alone, whoever sent what. No send
outcome then depends on which real address hides behind the stand-in (a
guest scanning for it gets the same answer from every port, and nothing is
delivered). A server answers each datagram before it receives the next;
a stand-in with no sender behind it yet is `invalid-argument`.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict

from ..addresses import MAX_DATAGRAM, IPAddress, SocketAddress
from ..backends.base import DatagramSocket
from ..errors import ErrorCode, NetError
from ..policy import Checker, Use, special_kind
from . import translate
from .common import SocketCore, make_counted
from .context import HIDDEN_PEER_V4, HIDDEN_PEER_V6, InstanceContext
from .tcp import check_family

# MAX_DATAGRAM (addresses.py), the largest payload one datagram can carry
# (IPv4 and IPv6 without jumbograms); `Limits.max_datagram` may lower it
# per instance. Re-exported here for the core's users.
#: How many recent senders a socket may reply to without an outbound rule.
MAX_REPLY_PEERS = 1024


class UdpState(enum.Enum):
    UNBOUND = "unbound"
    BOUND = "bound"
    CONNECTED = "connected"
    CLOSED = "closed"


def _invalid_state(operation: str, state: UdpState) -> NetError:
    return NetError(ErrorCode.INVALID_STATE, f"{operation} on a {state.value} udp socket")


def open_udp(context: InstanceContext, checker: Checker, ipv6: bool) -> UdpSocket:
    """A new guest socket, counted against `max_sockets` before the backend
    makes it."""
    sock = make_counted(context, "udp", lambda: context.backend.udp_socket(ipv6))
    core = UdpSocket(context, checker, sock, ipv6)
    core.counted = True
    return core


def check_destination(address: SocketAddress, ipv6: bool) -> None:
    """Reject destinations no datagram can go to: port 0, and the
    unspecified address, also in an IPv6 form that embeds it
    (`special_kind`). Multicast and broadcast are the rules' to judge."""
    check_family(address, ipv6)
    if address.port == 0 or special_kind(address.ip) == "unspecified":
        raise NetError(ErrorCode.INVALID_ARGUMENT, f"cannot send to {address}")


class UdpSocket(SocketCore):
    """A guest's UDP socket: state, checker, and the backend socket."""

    protocol = "udp"

    def __init__(self, context: InstanceContext, checker: Checker, sock: DatagramSocket,
                 ipv6: bool, state: UdpState = UdpState.UNBOUND,
                 preopened: bool = False) -> None:
        self.context = context
        self.checker = checker
        self.sock: DatagramSocket = sock
        self.ipv6 = ipv6
        self.state = state
        self.blocking = True
        self.timeout: float | None = None
        self.peer: SocketAddress | None = None
        #: Whether datagrams to the local address are allowed whoever sends
        #: them: a pre-open (the operator bound it), or an explicit bind an
        #: --allow-inbound rule allowed. Decided once, at bind time.
        self.receive_any = preopened
        #: Senders already recorded as allowed in the audit log.
        self._audited_senders: set[SocketAddress] = set()
        #: Recent senders of accepted datagrams: replies to them are allowed.
        self._reply_peers: OrderedDict[tuple[IPAddress, int], None] = OrderedDict()
        #: With hidden peers, what the stand-in maps back to (see the module).
        self._hidden_sender: SocketAddress | None = None
        #: Counted in `context.open_sockets` (see `open_udp`).
        self.counted = False
        #: Connected through a `->` mapping: `peer` is the guest-side address.
        self.peer_mapped = False
        #: Bound by the host for a send or connect through a mapping:
        #: local-address hides the real source (`translate.seen_local`).
        self.behind_mapping = False

    def _require(self, operation: str, *states: UdpState) -> None:
        if self.state not in states:
            raise _invalid_state(operation, self.state)

    def bind(self, address: SocketAddress) -> None:
        self._require("bind", UdpState.UNBOUND)
        check_family(address, self.ipv6)
        real, _, decision = translate.local(self.context, self.checker, Use.UDP_BIND, address,
                                            self.ipv6)
        self.take_origin(decision)
        self.bind_checked(Use.UDP_BIND, real)
        self.state = UdpState.BOUND
        self.receive_any = True

    def connect(self, address: SocketAddress) -> None:
        self._require("connect", UdpState.UNBOUND, UdpState.BOUND, UdpState.CONNECTED)
        check_destination(address, self.ipv6)
        real, mapped, decision = translate.remote(self.context, self.checker, Use.UDP_CONNECT,
                                                  address, self.ipv6)
        if self.origin == "implicit":
            self.take_origin(decision)
        if self.state is UdpState.UNBOUND:
            self._implicit_bind()
            self.behind_mapping = mapped
        self.sock.connect(real)
        self.peer = address
        self.peer_mapped = mapped
        self.state = UdpState.CONNECTED

    def check_family_of(self, address: SocketAddress) -> None:
        """`invalid-argument` unless `address` is of this socket's family."""
        check_family(address, self.ipv6)

    def implicit_bind_now(self) -> None:
        """The implicit bind, asked for ahead of a send (a `wasi:sockets`
        bind to the unspecified address and port 0, core/wasi_sockets.py)."""
        self._require("bind", UdpState.UNBOUND)
        self._implicit_bind()

    def _implicit_bind(self) -> None:
        """`SocketCore.implicit_bind`: checked before anything is sent or
        can arrive."""
        self.implicit_bind(Use.UDP_IMPLICIT_BIND)
        self.state = UdpState.BOUND

    def disconnect(self) -> None:
        self._require("disconnect", UdpState.CONNECTED)
        self.sock.disconnect()
        self.peer = None
        self.peer_mapped = False
        # Linux also releases a port the OS picked (connect on an unbound
        # socket, or bind to port 0): then the socket is unbound again.
        try:
            bound = self.sock.local_address().port != 0
        except NetError:
            bound = False
        self.state = UdpState.BOUND if bound else UdpState.UNBOUND

    def send(self, data: bytes, address: SocketAddress | None) -> int:
        self._require("send", UdpState.UNBOUND, UdpState.BOUND, UdpState.CONNECTED)
        if len(data) > self.context.limits.max_datagram:
            raise NetError(ErrorCode.DATAGRAM_TOO_LARGE, f"{len(data)} bytes")
        if self.state is UdpState.CONNECTED:
            if address is not None and address != self.peer:
                raise NetError(ErrorCode.INVALID_ARGUMENT,
                               f"connected to {self.peer}, not {address}")
            # The peer was checked by connect; send() goes nowhere else.
            self.context.meter_datagram(self.peer, self.blocking)
            sent = self.sock.send(data, None)
            self.context.charge(self.peer, len(data))
            self.context.observer.transferred("udp", self.origin, 0, sent)
            return sent
        if address is None:
            raise NetError(ErrorCode.INVALID_ARGUMENT, "no destination on an unconnected socket")
        if self.context.hide_peers:
            address, use = self._hidden_destination(address)
        else:
            check_destination(address, self.ipv6)
            # A reply to a recent sender is its own use (`Policy`: no allow
            # rule needed, like an accepted TCP connection answering its peer).
            use = Use.UDP_REPLY if (address.ip, address.port) in self._reply_peers else Use.UDP_SEND
        real, mapped, _ = translate.remote(self.context, self.checker, use, address, self.ipv6)
        if self.state is UdpState.UNBOUND:
            self._implicit_bind()
            self.behind_mapping = mapped
        self.context.meter_datagram(address, self.blocking)
        sent = self.sock.send(data, real)
        self.context.charge(address, len(data))
        self.state = UdpState.BOUND
        self.context.observer.transferred("udp", self.origin, 0, sent)
        return sent

    def _hidden_destination(self, address: SocketAddress) -> tuple[SocketAddress, Use]:
        """Where a send goes, and as which use, when peers are hidden: the
        stand-in is a reply to the last sender; any other address is an
        ordinary send, never a reply (see the module docstring)."""
        check_family(address, self.ipv6)
        if address == (HIDDEN_PEER_V6 if self.ipv6 else HIDDEN_PEER_V4):
            if self._hidden_sender is None:
                raise NetError(ErrorCode.INVALID_ARGUMENT, f"no sender behind {address} yet")
            return self._hidden_sender, Use.UDP_REPLY
        check_destination(address, self.ipv6)
        return address, Use.UDP_SEND

    def receive(self, max_len: int, peek: bool = False) -> tuple[bytes, SocketAddress]:
        """The next datagram from a sender the policy accepts.

        Datagrams from other senders are consumed and dropped while waiting
        (within the blocking mode and timeout), never shown to the guest.
        """
        self._require("receive", UdpState.BOUND, UdpState.CONNECTED)
        size = max(0, min(max_len, self.context.limits.max_datagram))
        deadline = None
        if self.blocking and self.timeout is not None:
            deadline = time.monotonic() + self.timeout
        try:
            while True:
                if not peek:
                    self.context.meter_datagram(self.peer, self.blocking)
                data, real_sender = self.sock.receive(size, peek)
                sender = translate.seen_peer(self.context, "udp", real_sender, self.ipv6)
                if self._accepts(sender, real_sender):
                    if not peek:
                        self.context.charge(sender, len(data))
                        self._remember_reply_peer(sender)
                        self._hidden_sender = sender
                        self.context.observer.transferred("udp", self.origin, len(data), 0)
                    return data, self.context.peer(sender)
                if peek:
                    self.sock.receive(0, False)  # consume the dropped datagram
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NetError(ErrorCode.TIMEOUT, "timed out")
                    self.sock.set_timeout(remaining)
        finally:
            if deadline is not None:
                self._apply_timeout()

    def _remember_reply_peer(self, sender: SocketAddress) -> None:
        key = (sender.ip, sender.port)
        self._reply_peers[key] = None
        self._reply_peers.move_to_end(key)
        if len(self._reply_peers) > MAX_REPLY_PEERS:
            self._reply_peers.popitem(last=False)

    def _accepts(self, sender: SocketAddress, real: SocketAddress) -> bool:
        """The receive filter (see the module docstring) on the sender as
        the guest sees it, and its real address (`translate.admit`);
        audits drops."""
        if self.receive_any:
            return True
        decision = translate.admit(self.context, self.checker, sender, real)
        shown_real = real if real != sender else None
        if not decision.allowed and self.context.audit_mode:
            if sender not in self._audited_senders and len(self._audited_senders) < 1024:
                self._audited_senders.add(sender)
                self.context.would_deny("receive", "udp", sender, decision, shown_real)
            return True
        if not decision.allowed:
            self.context.record("receive-drop", "udp", sender, decision, real=shown_real)
            return False
        if sender not in self._audited_senders and len(self._audited_senders) < 1024:
            self._audited_senders.add(sender)
            self.context.record("receive", "udp", sender, decision, real=shown_real)
        return True

    def local_address(self) -> SocketAddress:
        if self.state is UdpState.UNBOUND or self.state is UdpState.CLOSED:
            raise _invalid_state("local-address", self.state)
        return translate.seen_local(self.context, "udp", self.sock.local_address(), self.ipv6,
                                    self.behind_mapping)

    def quota_hold(self) -> float:
        """Datagrams count against the connected peer's buckets and the
        instance's; an unconnected socket's peers are known only per
        datagram, so the instance's buckets alone hold it."""
        if self.state is UdpState.CLOSED:
            return 0.0
        return self.context.quota_hold(self.peer)

    def remote_address(self) -> SocketAddress:
        self._require("remote-address", UdpState.CONNECTED)
        if self.peer_mapped and self.peer is not None:
            return self.peer
        return self.sock.remote_address()


__all__ = ["MAX_DATAGRAM", "MAX_REPLY_PEERS", "UdpSocket", "UdpState", "check_destination",
           "open_udp"]
