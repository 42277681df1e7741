"""`wasi:sockets` 0.2: network, instance-network, tcp, tcp-create-socket,
udp, udp-create-socket, ip-name-lookup.

Each class only looks up handles, converts, and calls the core: the
start/finish protocols are :mod:`capsock.core.wasi_sockets`, under which
the core's TCP/UDP sockets and resolver do every policy check, audit line,
limit, implicit bind, receive filter and hidden-peer substitution exactly
as for `capsock:net` (the same `InstanceContext`, so the same `Policy` or
checker, audit log, limits and resolved names). A denial is
`access-denied` before any system call toward the target.

Sockets are non-blocking in the host; a guest waits through pollables.
The socket options are the core's registry rows (`SocketResource`);
`udp-socket` names the hop limit `unicast-hop-limit`.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from ...addresses import IPAddress, SocketAddress
from ...backends.options import HOP_LIMIT
from ...core.resolve import NameResolver
from ...core.tcp import TcpSocket, open_tcp
from ...core.udp import UdpSocket, open_udp
from ...core.wasi_poll import Readiness
from ...core.wasi_sockets import Lookup, TcpReader, TcpWriter, WasiTcp, WasiUdp
from ...errors import ErrorCode, NetError
from ...policy import Checker
from ..interfaces.common import SocketResource
from ..registrar import GuestTrap
from ..wit_values import family_is_ipv6
from .io import InputStream, IoError, OutputStream, WasiPollable
from .state import WasiState

#: How long dropping an output stream waits for its buffered bytes to go
#: out (seconds), like a blocking close's linger.
LINGER = 30.0

#: The names of `wasi:sockets/network.error-code` a core error maps to,
#: where the two enums differ.
_WASI_NAMES = {ErrorCode.LIMIT_REACHED: "new-socket-limit"}


class Network:
    """`resource network`: the capability to use the instance's network,
    under its checker."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker


class NetworkInterface:
    """`wasi:sockets/network`."""

    resources: dict[str, type] = {"network": Network}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def network_error_code(self, err: IoError) -> str | None:
        """The `error-code` behind a stream's `last-operation-failed`."""
        if err.code is None:
            return None
        return _WASI_NAMES.get(err.code, err.code.value)


class InstanceNetwork:
    """`wasi:sockets/instance-network`."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def instance_network(self) -> Network:
        return Network(self.state.context.checker)


class TcpInputStream(InputStream):
    """A connection's `input-stream`."""

    def __init__(self, state: WasiState, tcp: WasiTcp) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.reader = TcpReader(tcp)

    def _read(self, max_len: int) -> bytes | None:
        return self.reader.read(max_len)

    def _readiness(self) -> Readiness:
        return self.reader.readiness()

    def held_socket(self) -> Any:
        return self.reader.tcp.core.sock


class TcpOutputStream(OutputStream):
    """A connection's `output-stream` (buffered as `TcpWriter` says)."""

    def __init__(self, state: WasiState, tcp: WasiTcp) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.writer = TcpWriter(tcp, state.context.limits.max_io_bytes)

    def _check_write(self) -> int:
        return self.writer.check_write()

    def _write(self, data: bytes) -> None:
        self.writer.write(data)

    def _flushed(self) -> bool:
        return self.writer.flushed()

    def _readiness(self) -> Readiness:
        return self.writer.readiness()

    def held_socket(self) -> Any:
        return self.writer.tcp.core.sock

    def drop(self) -> None:
        """Push out what is still buffered before the guest closes the
        socket (a `sendall` then `close` must deliver every byte), waiting
        for the peer to take it, as a blocking `close` with unsent data
        lingers, for at most `LINGER` seconds (a peer that never reads
        cannot hold the guest longer); the kill switch interrupts it too."""
        writer = self.writer
        deadline = time.monotonic() + LINGER
        try:
            while writer.pending and not self.stopped() and time.monotonic() < deadline:
                if writer.flushed():
                    return
                readiness = writer.readiness()
                if readiness is None:
                    return
                if isinstance(readiness, float):  # the byte-rate quota holds it until then
                    time.sleep(min(1.0, max(0.0, readiness - time.monotonic())))
                    continue
                self.context.backend.poll([readiness], 1.0)
        except (NetError, EOFError):
            return


def _streams(state: WasiState, tcp: WasiTcp) -> tuple[TcpInputStream, TcpOutputStream]:
    return TcpInputStream(state, tcp), TcpOutputStream(state, tcp)


class WasiTcpSocket(SocketResource, protocol="tcp", wasi=True):
    """`resource tcp-socket` of `wasi:sockets/tcp`."""

    def __init__(self, state: WasiState, tcp: WasiTcp) -> None:
        self.state = state
        self.tcp = tcp

    @property
    def core(self) -> TcpSocket:  # type: ignore[override]
        """The core socket (a bind may swap in a pre-open: WasiTcp)."""
        return self.tcp.core

    def _use(self, network: Network) -> None:
        """Operations judge by the network the guest passes (there is one
        per instance, but a narrower one would narrow this socket)."""
        self.core.checker = network.checker

    def start_bind(self, network: Network, local_address: SocketAddress) -> None:
        self._use(network)
        self.tcp.start_bind(_unmapped(local_address, self.core.ipv6))

    def finish_bind(self) -> None:
        self.tcp.finish_bind()

    def start_connect(self, network: Network, remote_address: SocketAddress) -> None:
        self._use(network)
        self.tcp.start_connect(_unmapped(remote_address, self.core.ipv6))

    def finish_connect(self) -> tuple[TcpInputStream, TcpOutputStream]:
        self.tcp.finish_connect()
        return _streams(self.state, self.tcp)

    def start_listen(self) -> None:
        self.tcp.start_listen()

    def finish_listen(self) -> None:
        self.tcp.finish_listen()

    def accept(self) -> tuple[WasiTcpSocket, TcpInputStream, TcpOutputStream]:
        child = self.tcp.accept()
        return (WasiTcpSocket(self.state, child), *_streams(self.state, child))

    def local_address(self) -> SocketAddress:
        return self.tcp.local_address()

    def remote_address(self) -> SocketAddress:
        return self.tcp.remote_address()

    def is_listening(self) -> bool:
        return self.tcp.listening()

    def address_family(self) -> str:
        return "ipv6" if self.core.ipv6 else "ipv4"

    def set_listen_backlog_size(self, value: int) -> None:
        self.tcp.set_listen_backlog_size(value)

    def subscribe(self) -> WasiPollable:  # type: ignore[override]
        return WasiPollable(self.state.context, self.tcp.readiness, self.state.stopped)

    def shutdown(self, shutdown_type: str) -> None:
        self.tcp.shutdown(shutdown_type in ("receive", "both"),
                          shutdown_type in ("send", "both"))

    def drop(self) -> None:
        self.tcp.close()


def _unmapped(address: SocketAddress, ipv6: bool) -> SocketAddress:
    """The spec refuses an IPv4-mapped IPv6 address on any socket
    (`invalid-argument`): the family of the socket is the family used."""
    if ipv6 and isinstance(address.ip, ipaddress.IPv6Address) \
            and address.ip.ipv4_mapped is not None:
        raise NetError(ErrorCode.INVALID_ARGUMENT, "IPv4-mapped IPv6 addresses are refused")
    return address


class Tcp:
    """`wasi:sockets/tcp`."""

    resources: dict[str, type] = {"tcp-socket": WasiTcpSocket}

    def __init__(self, state: WasiState) -> None:
        self.state = state


class TcpCreateSocket:
    """`wasi:sockets/tcp-create-socket`."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def create_tcp_socket(self, address_family: str) -> WasiTcpSocket:
        context = self.state.context
        core = open_tcp(context, context.checker, family_is_ipv6(address_family))
        return WasiTcpSocket(self.state, WasiTcp(core))


# -- UDP ---------------------------------------------------------------------------

class WasiUdpSocket(SocketResource, protocol="udp", wasi=True):
    """`resource udp-socket` of `wasi:sockets/udp`."""

    def __init__(self, state: WasiState, udp: WasiUdp) -> None:
        self.state = state
        self.udp = udp

    @property
    def core(self) -> UdpSocket:  # type: ignore[override]
        """The core socket (a bind may swap in a pre-open: WasiUdp)."""
        return self.udp.core

    def start_bind(self, network: Network, local_address: SocketAddress) -> None:
        self.core.checker = network.checker
        self.udp.start_bind(_unmapped(local_address, self.core.ipv6))

    def finish_bind(self) -> None:
        self.udp.finish_bind()

    def stream(self, remote_address: SocketAddress | None
               ) -> tuple[IncomingDatagramStream, OutgoingDatagramStream]:
        if remote_address is not None:
            remote_address = _unmapped(remote_address, self.core.ipv6)
        generation = self.udp.stream(remote_address)
        return (IncomingDatagramStream(self.state, self.udp, generation),
                OutgoingDatagramStream(self.state, self.udp, generation))

    def local_address(self) -> SocketAddress:
        return self.udp.local_address()

    def remote_address(self) -> SocketAddress:
        return self.udp.remote_address()

    def address_family(self) -> str:
        return "ipv6" if self.core.ipv6 else "ipv4"

    def unicast_hop_limit(self) -> int:
        return self.core.get_option(HOP_LIMIT)

    def set_unicast_hop_limit(self, value: int) -> None:
        self.core.set_option(HOP_LIMIT, value)

    def subscribe(self) -> WasiPollable:  # type: ignore[override]
        return WasiPollable(self.state.context, lambda: None, self.state.stopped)

    def drop(self) -> None:
        self.udp.close()


class IncomingDatagramStream:
    """`resource incoming-datagram-stream`."""

    def __init__(self, state: WasiState, udp: WasiUdp, generation: int) -> None:
        self.state = state
        self.udp = udp
        self.generation = generation

    def _current(self) -> None:
        if self.generation != self.udp.generation:
            raise NetError(ErrorCode.INVALID_STATE, "a later `stream` call replaced this stream")

    def receive(self, max_results: int) -> list[dict[str, Any]]:
        self._current()
        if max_results == 0:
            return []
        return [{"data": data, "remote-address": sender}
                for data, sender in self.udp.receive(min(max_results, 1024))]

    def subscribe(self) -> WasiPollable:
        return WasiPollable(self.state.context, lambda: self.udp.readiness(True),
                        self.state.stopped)

    def held_socket(self) -> Any:
        return self.udp.core.sock


class OutgoingDatagramStream:
    """`resource outgoing-datagram-stream`: `check-send` grants a number of
    datagrams, `send` may not send more (the spec: trap)."""

    #: Datagrams one `check-send` grants.
    PERMIT = 64

    def __init__(self, state: WasiState, udp: WasiUdp, generation: int) -> None:
        self.state = state
        self.udp = udp
        self.generation = generation
        self.granted = 0

    def _current(self) -> None:
        if self.generation != self.udp.generation:
            raise NetError(ErrorCode.INVALID_STATE, "a later `stream` call replaced this stream")

    def check_send(self) -> int:
        self._current()
        self.granted = self.PERMIT
        return self.granted

    def send(self, datagrams: list[dict[str, Any]]) -> int:
        self._current()
        if len(datagrams) > self.granted:
            raise GuestTrap(f"send of {len(datagrams)} datagrams exceeds the permit of "
                            f"{self.granted} from check-send")
        if not datagrams:
            return 0
        items = []
        for datagram in datagrams:
            remote = datagram["remote-address"]
            if remote is not None:
                remote = _unmapped(remote, self.udp.ipv6)
            items.append((datagram["data"], remote))
        sent = self.udp.send(items)
        self.granted -= sent
        return sent

    def subscribe(self) -> WasiPollable:
        return WasiPollable(self.state.context, lambda: self.udp.readiness(False),
                        self.state.stopped)

    def held_socket(self) -> Any:
        return self.udp.core.sock


class Udp:
    """`wasi:sockets/udp`."""

    resources: dict[str, type] = {"udp-socket": WasiUdpSocket,
                                  "incoming-datagram-stream": IncomingDatagramStream,
                                  "outgoing-datagram-stream": OutgoingDatagramStream}

    def __init__(self, state: WasiState) -> None:
        self.state = state


class UdpCreateSocket:
    """`wasi:sockets/udp-create-socket`."""

    resources: dict[str, type] = {}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def create_udp_socket(self, address_family: str) -> WasiUdpSocket:
        context = self.state.context
        core = open_udp(context, context.checker, family_is_ipv6(address_family))
        return WasiUdpSocket(self.state, WasiUdp(core))


# -- names -----------------------------------------------------------------------------

class ResolveAddressStream:
    """`resource resolve-address-stream`: the lookup is done when the
    stream is made, so it is always ready."""

    def __init__(self, state: WasiState, lookup: Lookup) -> None:
        self.state = state
        self.lookup = lookup

    def resolve_next_address(self) -> IPAddress | None:
        return self.lookup.next()

    def subscribe(self) -> WasiPollable:
        return WasiPollable(self.state.context, lambda: None, self.state.stopped)


class IpNameLookup:
    """`wasi:sockets/ip-name-lookup`: the core's resolver, with its policy
    (`--allow-resolve`, name rules remembered for this instance), its rate
    limit and the host's DNS resolver."""

    resources: dict[str, type] = {"resolve-address-stream": ResolveAddressStream}

    def __init__(self, state: WasiState) -> None:
        self.state = state

    def resolve_addresses(self, network: Network, name: str) -> ResolveAddressStream:
        literal = _ip_literal(name)
        if literal is not None:  # the spec: parsed and returned, no lookup
            return ResolveAddressStream(self.state, Lookup([literal]))
        resolver = NameResolver(self.state.context, network.checker)
        return ResolveAddressStream(self.state, Lookup(resolver.resolve(name, None)))


def _ip_literal(name: str) -> IPAddress | None:
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def interfaces(state: WasiState) -> dict[str, Any]:
    """The `wasi:sockets` implementations of one instance, by unversioned name."""
    return {
        "wasi:sockets/network": NetworkInterface(state),
        "wasi:sockets/instance-network": InstanceNetwork(state),
        "wasi:sockets/tcp": Tcp(state),
        "wasi:sockets/tcp-create-socket": TcpCreateSocket(state),
        "wasi:sockets/udp": Udp(state),
        "wasi:sockets/udp-create-socket": UdpCreateSocket(state),
        "wasi:sockets/ip-name-lookup": IpNameLookup(state),
    }


__all__ = ["Network", "WasiTcpSocket", "WasiUdpSocket", "interfaces"]

