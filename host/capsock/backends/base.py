"""The interface every backend implements.

The core (policy checks, state machine) calls only these methods, so an
embedder can swap the OS for anything that behaves like a network. Methods
raise :class:`capsock.errors.NetError` for every expected failure.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from ..addresses import IPAddress, SocketAddress
from .options import SocketOption


class StreamSocket(Protocol):
    """One TCP socket of a backend, in BSD terms."""

    def bind(self, address: SocketAddress) -> None: ...
    def listen(self, backlog: int) -> None: ...
    def accept(self) -> tuple[StreamSocket, SocketAddress]: ...
    def connect(self, address: SocketAddress) -> None: ...
    def receive(self, max_len: int, peek: bool) -> bytes: ...
    def send(self, data: bytes) -> int: ...
    def shutdown(self, receive: bool, send: bool) -> None: ...
    def local_address(self) -> SocketAddress: ...
    def remote_address(self) -> SocketAddress: ...
    def set_blocking(self, blocking: bool) -> None: ...
    def set_timeout(self, seconds: float | None) -> None: ...
    def get_option(self, option: SocketOption) -> int:
        """The option's value in the contract's units (see `options`)."""
        ...
    def set_option(self, option: SocketOption, value: int) -> None:
        """Set a value the core validated and normalised."""
        ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class DatagramSocket(Protocol):
    """One UDP socket of a backend, in BSD terms.

    The core does the policy checks (including dropping datagrams from
    senders the policy does not allow) before and after these calls; a
    backend only moves datagrams.
    """

    def bind(self, address: SocketAddress) -> None: ...
    def connect(self, address: SocketAddress) -> None: ...
    def disconnect(self) -> None:
        """`connect(AF_UNSPEC)`: forget the default peer."""
        ...
    def send(self, data: bytes, address: SocketAddress | None) -> int: ...
    def receive(self, max_len: int, peek: bool) -> tuple[bytes, SocketAddress]: ...
    def local_address(self) -> SocketAddress: ...
    def remote_address(self) -> SocketAddress: ...
    def set_blocking(self, blocking: bool) -> None: ...
    def set_timeout(self, seconds: float | None) -> None: ...
    def get_option(self, option: SocketOption) -> int:
        """The option's value in the contract's units (see `options`)."""
        ...
    def set_option(self, option: SocketOption, value: int) -> None:
        """Set a value the core validated and normalised."""
        ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Resolver(Protocol):
    """Turns a domain name into IP addresses (never parses IP literals).

    `name` is already validated and normalized (lower case, no trailing
    dot) and allowed by the policy. `ipv6` None asks for both families.
    Failures raise NetError with `name-unresolvable`,
    `temporary-resolver-failure` or `permanent-resolver-failure`.
    """

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]: ...


class Backend(Protocol):
    """Creates sockets and waits for them. One backend may serve many guest
    instances; every socket a guest polls was made by the same backend, so
    readiness is the backend's business (poll(2) for the OS, a condition
    variable for the in-memory network), never the binding layer's."""

    def tcp_socket(self, ipv6: bool) -> StreamSocket: ...

    def open_listener(self, address: SocketAddress, backlog: int) -> StreamSocket:
        """A listening socket the operator pre-opens (`--tcplisten`).

        Port 0 picks a free port; the caller names the pre-open after
        `local_address()`. Failures raise NetError (e.g. `address-in-use`).
        """
        ...

    def open_udp(self, address: SocketAddress) -> DatagramSocket:
        """A bound UDP socket the operator pre-opens (`--udpbind`)."""
        ...

    def adopt_tcp(self, sock: socket.socket) -> StreamSocket:
        """Wrap a listening socket the operator pre-opened on the host."""
        ...

    def udp_socket(self, ipv6: bool) -> DatagramSocket: ...

    def adopt_udp(self, sock: socket.socket) -> DatagramSocket:
        """Wrap a bound UDP socket the operator pre-opened (`--udpbind`)."""
        ...

    def poll(self, waits: Sequence[tuple[StreamSocket | DatagramSocket, bool]],
             timeout: float | None) -> list[int]:
        """Wait until at least one `(socket, readable)` entry is ready.

        `readable` False means writable (or, for a connecting TCP socket,
        connected). A closed socket, or one in error, counts as ready so a
        waiting guest wakes up and finds out. Returns the ready indexes in
        ascending order; empty when `timeout` seconds passed (None: wait
        as long as it takes, 0: do not wait).
        """
        ...

    def interrupt(self, sock: StreamSocket | DatagramSocket,
                  shared: bool) -> Callable[[], None] | None:
        """Wake, from another thread, every call blocked on `sock` (the
        kill switch: the guest is being stopped), making them fail at once.

        `shared`: the embedder holds another reference to the socket (a
        `dup` of a pre-open it passed in) and keeps using it after the
        guest is gone. Returns what to call once the guest is gone to give
        the embedder its socket back as it was (a listener listening
        again), or None when there is nothing to restore.
        """
        ...

    def default_resolver(self) -> Resolver:
        """The resolver that belongs to this backend's network, used when
        the host is given none (the system's for the OS; the virtual
        network's name table for the in-memory backend)."""
        ...


class Closable(Protocol):
    def close(self) -> None: ...


_Opened = TypeVar("_Opened", bound=Closable)


def set_up_or_close(sock: _Opened, *steps: Callable[[], None]) -> _Opened:
    """Run `steps` (bind, listen...) on a new socket; close it if one fails,
    so a failed pre-open leaks no socket."""
    try:
        for step in steps:
            step()
    except BaseException:
        sock.close()
        raise
    return sock
