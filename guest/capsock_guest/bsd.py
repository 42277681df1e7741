"""A drop-in for Python's `socket` module, over capsock's capabilities.

Code written for the standard `socket` module runs unchanged::

    import socket                      # this module, in a `capsock build` guest

    with socket.create_connection(("127.0.0.1", 8080), timeout=5) as s:
        s.sendall(b"hello")
        print(s.recv(1024))

Every operation goes through the host's `tcp-capable-network`,
`udp-capable-network` and `ip-address-resolver` handles, so the operator's
``--allow-*`` rules apply to it; a denied operation raises
`PermissionError`. CPython's own `socket` module in a componentize-py
guest goes to wasmtime's `wasi:sockets` instead, which capsock grants
nothing.

How `import socket` becomes this module
----------------------------------------
componentize-py puts its standard library *before* the app's ``-p``
directories on ``sys.path`` (measured: ``/python`` first, the app's paths
as ``/0``, ``/1``...), so a ``socket.py`` shim directory cannot shadow the
stdlib. Instead, ``capsock_guest.use_bsd.install()`` registers this
module as ``sys.modules["socket"]`` (and `capsock_guest.bsd_selectors` as
``"selectors"``) at build time, before anything imports them; the snapshot
componentize-py takes keeps that, so ``import socket`` in the app and in
stdlib modules imported after it (`socketserver`, `http.server`,
`http.client`, `urllib.request`, ...) all get this module.
``import capsock_guest.use_bsd`` as an app's *first* import does it;
``capsock build`` and ``guest/build.py`` do it for plain scripts (an
``app.py`` without a ``Run`` export).

Differences from CPython's socket module
-----------------------------------------
- No file descriptors. `socket.fileno` returns a small fake number (unique
  per open socket, -1 once closed) so that `selectors` and code that
  registers ``obj.fileno()`` work; it means nothing to `os`. `select.select`
  and `select.poll` take it through `capsock_guest._select` (``select`` in
  a guest), built like `selectors` on `poll`.
- Options: those the contract has, one row each in `socket._OPTIONS`
  (``SO_REUSEADDR``, ``SO_KEEPALIVE``, ``TCP_NODELAY``, ``SO_RCVBUF``,
  ``IP_TTL`` / ``IPV6_UNICAST_HOPS``, ...), plus read-only ``SO_TYPE`` and
  ``SO_ERROR`` (the outcome of a non-blocking connect); any other raises
  ``OSError(ENOPROTOOPT)``.
- `getaddrinfo` parses IP literals locally; names go to the resolver
  capability (``--allow-resolve``), including ``localhost``. No reverse
  lookups: `getfqdn` returns its argument, `gethostbyaddr` raises `herror`.
- Pre-opened sockets (``--tcplisten``, ``--udpbind``) by name:
  `preopened` lists them, `from_preopened` wraps one (a ``fromfd`` by name).
  A TCP ``bind`` to exactly a ``--tcplisten`` address takes that listener
  (so ``capsock serve --instances N`` runs scripts that bind their port).
- Errors raise the classes CPython raises (`ConnectionRefusedError`,
  `PermissionError` for ``access-denied``, `TimeoutError` = `timeout`,
  `BlockingIOError`, `gaierror` for name errors, ...), from the one table
  `capsock_guest._errors.ERRORS`; ``strerror`` names the capsock code too.
  errno values are WASI's (``errno.ECONNREFUSED`` in the guest), EAI_* are
  glibc's.
- ``socketpair()`` is two connected stream sockets in the guest's own
  memory (`capsock_guest._pair`): no host call, no capability.
- Not provided: ``AF_UNIX``, raw sockets, ``dup``,
  ``sendfile`` (falls back to `send` via `socket.sendfile`), ancillary data,
  ``SO_REUSEPORT`` (so `socketserver` does not ask for it).
"""

from __future__ import annotations

import errno as _errno
import io
import ipaddress
import os
import weakref
from collections.abc import Callable
from enum import IntEnum, IntFlag
from typing import Any

from componentize_py_types import Err
from wit_world.imports import socket as _wsocket
from wit_world.imports import socket_tcp, socket_udp
from wit_world.imports.socket import IpSocketAddress

from . import _preopen
from ._address import format_address, from_wit, wit_socket_address
from ._errors import (
    EAI_AGAIN,
    EAI_BADFLAGS,
    EAI_FAIL,
    EAI_FAMILY,
    EAI_NONAME,
    EAI_SERVICE,
    EAI_SOCKTYPE,
    ERRORS,
    NetError,
    code_name,
    gaierror,
)
from ._lane import Receiver, send_bytes, send_datagram
from ._resolve import resolver as _resolver
from ._tcp import tcp_network
from ._udp import udp_network

# ---------------------------------------------------------------- constants
# Linux's values, so numbers printed or compared look familiar; code should
# use the names.


class AddressFamily(IntEnum):
    AF_UNSPEC = 0
    AF_INET = 2
    AF_INET6 = 10


class SocketKind(IntEnum):
    SOCK_STREAM = 1
    SOCK_DGRAM = 2


class MsgFlag(IntFlag):
    MSG_PEEK = 2
    MSG_DONTWAIT = 0x40
    MSG_WAITALL = 0x100
    MSG_NOSIGNAL = 0x4000


class AddressInfo(IntFlag):
    AI_PASSIVE = 1
    AI_CANONNAME = 2
    AI_NUMERICHOST = 4
    AI_V4MAPPED = 8
    AI_ALL = 0x10
    AI_ADDRCONFIG = 0x20
    AI_NUMERICSERV = 0x400


AF_UNSPEC, AF_INET, AF_INET6 = AddressFamily
SOCK_STREAM, SOCK_DGRAM = SocketKind
MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL, MSG_NOSIGNAL = MsgFlag
#: MSG_PEEK as a plain int: `flags & MSG_PEEK` on the enum runs enum.py's
#: __and__ (~5 us inside wasm), on every recv of the hot path.
_PEEK = int(MsgFlag.MSG_PEEK)
(AI_PASSIVE, AI_CANONNAME, AI_NUMERICHOST, AI_V4MAPPED, AI_ALL, AI_ADDRCONFIG,
 AI_NUMERICSERV) = AddressInfo

IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 0, 6, 17, 41
SOL_SOCKET, SOL_TCP, SOL_UDP, SOL_IP = 1, 6, 17, 0
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE = 2, 3, 4, 7, 8, 9
TCP_NODELAY, TCP_KEEPIDLE = 1, 4
IP_TTL = 2
IPV6_UNICAST_HOPS, IPV6_V6ONLY = 16, 26
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SOMAXCONN = 4096
NI_NUMERICHOST, NI_NUMERICSERV, NI_NAMEREQD, NI_DGRAM = 1, 2, 8, 16
INADDR_ANY, INADDR_LOOPBACK, INADDR_BROADCAST = 0, 0x7F000001, 0xFFFFFFFF
has_ipv6 = True

#: How a `setsockopt` value becomes the WIT setter's argument, and the WIT
#: getter's result a `getsockopt` value.
_Conversion = tuple[Callable[[Any], Any], Callable[[Any], int]]
_FLAG: _Conversion = (bool, int)
_INT: _Conversion = (int, int)
_SECONDS: _Conversion = (lambda seconds: int(seconds) * 1_000_000_000,
                         lambda nanoseconds: int(nanoseconds) // 1_000_000_000)

error = OSError
timeout = TimeoutError

__all__ = [
    "socket", "SocketType", "SocketIO", "create_connection", "create_server",
    "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "gethostname",
    "getfqdn", "getnameinfo", "getdefaulttimeout", "setdefaulttimeout",
    "has_dualstack_ipv6", "preopened", "from_preopened", "fromfd", "socketpair",
    "inet_aton", "inet_ntoa", "inet_pton", "inet_ntop", "htons", "ntohs", "htonl", "ntohl",
    "error", "timeout", "gaierror", "herror", "AddressFamily", "SocketKind",
    "AF_UNSPEC", "AF_INET", "AF_INET6", "SOCK_STREAM", "SOCK_DGRAM",
    "SOL_SOCKET", "SO_REUSEADDR", "SO_KEEPALIVE", "SO_SNDBUF", "SO_RCVBUF", "SO_TYPE",
    "SO_ERROR", "IPPROTO_IP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6", "TCP_NODELAY",
    "TCP_KEEPIDLE",
    "IP_TTL", "IPV6_UNICAST_HOPS", "IPV6_V6ONLY", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
    "SOCK_NONBLOCK", "SOCK_CLOEXEC",
    "MSG_PEEK", "MSG_DONTWAIT", "MSG_WAITALL", "MSG_NOSIGNAL", "SOMAXCONN",
    "AI_PASSIVE", "AI_CANONNAME", "AI_NUMERICHOST", "AI_NUMERICSERV", "AI_V4MAPPED",
    "AI_ALL", "AI_ADDRCONFIG", "NI_NUMERICHOST", "NI_NUMERICSERV", "NI_NAMEREQD",
    "EAI_AGAIN", "EAI_BADFLAGS", "EAI_FAIL", "EAI_FAMILY", "EAI_NONAME", "EAI_SERVICE",
    "EAI_SOCKTYPE", "has_ipv6", "INADDR_ANY", "INADDR_LOOPBACK",
]


class herror(OSError):  # noqa: N801  socket.herror
    """Address-to-name lookups (no capability offers them)."""


_EAI_TEXT = {
    EAI_NONAME: "Name or service not known",
    EAI_AGAIN: "Temporary failure in name resolution",
    EAI_FAIL: "Non-recoverable failure in name resolution",
    EAI_SERVICE: "Servname not supported for ai_socktype",
    EAI_FAMILY: "ai_family not supported",
    EAI_SOCKTYPE: "ai_socktype not supported",
    EAI_BADFLAGS: "Bad value for ai_flags",
}


# ---------------------------------------------------------------- errors


def _exception(code: str, number: int | None = None, detail: str | None = None) -> OSError:
    """The exception Python's socket module raises for an error-code (from
    the one table); ``number`` overrides the errno (its class follows from
    it, as ``OSError(errno, ...)`` does in CPython). ``strerror`` is the
    usual text plus the capsock code (and ``detail``, when the guest
    library knows why), e.g. ``Permission denied (capsock: access-denied)``."""
    table_errno, cls = ERRORS.get(code, ERRORS["unknown"])
    why = f"(capsock: {detail or code})"
    if cls is gaierror:
        return gaierror(table_errno, f"{_EAI_TEXT.get(table_errno, code)} {why}")
    if cls is TimeoutError and number is None:
        return TimeoutError(table_errno, f"timed out {why}")
    if number is not None:
        return OSError(number, f"{os.strerror(number)} {why}")
    return cls(table_errno, f"{os.strerror(table_errno)} {why}")


def _translate(err: Err[Any], invalid_state: int | None = None,
               denied: tuple[str, str, IpSocketAddress] | None = None) -> OSError:
    """``denied`` is ``(operation, protocol, address)`` of a bind, connect or
    send: an ``access-denied`` then names them and the rule that would allow
    it (the host, which knows the rule that decided, prints its own line)."""
    value = err.value
    code = code_name(value) if isinstance(value, _wsocket.ErrorCode) else "unknown"
    detail = None
    if code == "access-denied" and denied is not None:
        operation, protocol, address = denied
        addr = from_wit(address)
        host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        flag = "--allow-inbound" if operation == "bind" else "--allow-outbound"
        detail = (f"{operation} {'on' if operation == 'bind' else 'to'} {host}:{addr[1]} denied "
                  f"by the host's policy; the rule that allows it: "
                  f"{flag}={protocol}://{host}:{addr[1]}")
    return _exception(code, invalid_state if code == "invalid-state" else None, detail)


def _from_net_error(e: NetError) -> OSError:
    return _exception(e.code, detail=e.strerror)


def _bad_fd() -> OSError:
    return OSError(_errno.EBADF, os.strerror(_errno.EBADF))


# ---------------------------------------------------------------- addresses

_default_timeout: float | None = None
_GLOBAL_DEFAULT_TIMEOUT = object()

#: fake fileno -> socket, for selectors (weak: a dropped socket frees its number)
_by_fileno: weakref.WeakValueDictionary[int, socket] = weakref.WeakValueDictionary()
_next_fileno = 3


def _lookup_fileno(fd: int) -> socket | None:
    """The open socket with fake descriptor ``fd`` (used by bsd_selectors)."""
    return _by_fileno.get(fd)


def _new_fileno(sock: socket) -> int:
    """The next fake descriptor, registered for ``sock``."""
    global _next_fileno
    fd = _next_fileno
    _next_fileno += 1
    _by_fileno[fd] = sock
    return fd


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


_ANY_V4 = ipaddress.IPv4Address(0)
_ANY_V6 = ipaddress.IPv6Address(0)
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def _sockaddr(family: int, address: Any, passive: bool) -> IpSocketAddress:
    """A caller's address tuple as the WIT address: ``""`` is the wildcard,
    names are resolved (through the resolver capability). An IP literal
    is parsed here, once."""
    if not isinstance(address, tuple) or len(address) not in (2, 4):
        raise TypeError(f"{'AF_INET6' if family == AF_INET6 else 'AF_INET'} address "
                        f"must be a tuple (host, port), not {address!r}")
    host, port = address[0], address[1]
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 0xFFFF:
        raise OverflowError("port must be 0-65535.")
    if not isinstance(host, str):
        host = bytes(host).decode("idna")
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    if host == "":
        ip = _ANY_V6 if family == AF_INET6 else _ANY_V4
    elif host == "<broadcast>":
        ip = _BROADCAST
    else:
        ip = _ip(host)
        if ip is None:
            infos = getaddrinfo(host, port, family, 0, 0, AI_PASSIVE if passive else 0)
            host = infos[0][4][0]
            ip = _ip(host)
    assert ip is not None
    if (ip.version == 6) != (family == AF_INET6):
        raise OSError(_errno.EAFNOSUPPORT, f"{os.strerror(_errno.EAFNOSUPPORT)}: "
                      f"{host} on an {'AF_INET6' if family == AF_INET6 else 'AF_INET'} socket")
    if ip.version == 6 and len(address) == 4:
        return wit_socket_address(ip, port, address[2], address[3])
    return wit_socket_address(ip, port)


def _wit_family(family: int) -> str:
    if family == AF_INET:
        return "ipv4"
    if family == AF_INET6:
        return "ipv6"
    raise OSError(_errno.EAFNOSUPPORT, f"address family {family} not supported")


# ---------------------------------------------------------------- socket


class socket:  # noqa: N801  the name of Python's class
    """``socket.socket(family=AF_INET, type=SOCK_STREAM, proto=0)`` over capsock.

    TCP and UDP over IPv4 and IPv6. Creating one needs the host's TCP or UDP
    capability (else `PermissionError`); what it may bind or connect to is
    the host's policy.
    """

    _shut_wr = False  # after shutdown(SHUT_WR|SHUT_RDWR): send raises EPIPE
    _pending_error: OSError | None = None  # the error connect_ex returned
    _preopened_listener = False  # bound by taking a --tcplisten pre-open

    def __init__(self, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0,
                 fileno: Any = None) -> None:
        if fileno is not None:
            raise OSError(_errno.EOPNOTSUPP, "capsock sockets have no file descriptors; "
                                             "use socket.from_preopened(name)")
        if family not in (AF_INET, AF_INET6):
            raise OSError(_errno.EAFNOSUPPORT, f"address family {family} not supported")
        kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
        if kind not in (SOCK_STREAM, SOCK_DGRAM):
            raise OSError(_errno.EPROTONOSUPPORT, f"socket type {type} not supported")
        # the members themselves, not AddressFamily(family): an enum call is
        # Python code in the guest's interpreter, paid by every socket an
        # accept makes (family and kind were checked above)
        self._family = AF_INET6 if family == AF_INET6 else AF_INET
        self._type = SOCK_STREAM if kind == SOCK_STREAM else SOCK_DGRAM
        self._proto = proto or (IPPROTO_TCP if kind == SOCK_STREAM else IPPROTO_UDP)
        self._tcp: socket_tcp.TcpSocket | None = None
        self._udp: socket_udp.UdpSocket | None = None
        self._receiver = Receiver()
        self._closed = False
        self._io_refs = 0
        self._timeout: float | None = None
        self._connecting: IpSocketAddress | None = None
        self.name: str | None = None  # the pre-open name, if any
        raw = _adopting
        try:
            if raw is not None:
                pass
            elif kind == SOCK_STREAM:
                raw = tcp_network().socket(_wit_family(family)).raw
            else:
                raw = udp_network().socket(_wit_family(family)).raw
        except NetError as e:
            raise _from_net_error(e) from None
        if kind == SOCK_STREAM:
            self._tcp = raw
        else:
            self._udp = raw
        self._fileno = _new_fileno(self)
        if type & SOCK_NONBLOCK:
            self.setblocking(False)
        elif _default_timeout is not None:
            self.settimeout(_default_timeout)

    # -- plumbing ------------------------------------------------------------

    def _t(self) -> socket_tcp.TcpSocket:
        if self._tcp is None:
            if self._udp is not None:
                raise OSError(_errno.EOPNOTSUPP, "operation not supported on a UDP socket")
            raise _bad_fd()
        return self._tcp

    def _raw(self) -> Any:
        raw = self._tcp if self._tcp is not None else self._udp
        if raw is None:
            raise _bad_fd()
        return raw

    @property
    def family(self) -> AddressFamily:
        return self._family

    @property
    def type(self) -> SocketKind:
        return self._type

    @property
    def proto(self) -> int:
        return self._proto

    def fileno(self) -> int:
        """A fake descriptor (see the module docstring); -1 when closed."""
        return -1 if self._closed else self._fileno

    def __repr__(self) -> str:
        state = "[closed] " if self._closed else ""
        text = (f"<capsock socket {state}fd={self.fileno()}, family={self._family.name}, "
                f"type={self._type.name}, proto={self._proto}")
        if not self._closed:
            try:
                text += f", laddr={self.getsockname()}"
            except OSError:
                pass
        return text + ">"

    # -- lifetime ------------------------------------------------------------

    def __enter__(self) -> socket:
        return self

    def __exit__(self, *args: object) -> None:
        if not self._closed:
            self.close()

    def close(self) -> None:
        """Close; the host socket goes when the last `makefile` stream does."""
        self._closed = True
        if self._io_refs <= 0:
            self._real_close()

    def _real_close(self) -> None:
        raw, self._tcp, self._udp = self._raw_or_none(), None, None
        _by_fileno.pop(self._fileno, None)
        if raw is not None:
            raw.__exit__(None, None, None)

    def _raw_or_none(self) -> Any:
        return self._tcp if self._tcp is not None else self._udp

    def _decref_socketios(self) -> None:
        if self._io_refs > 0:
            self._io_refs -= 1
        if self._closed:
            self.close()

    def detach(self) -> int:
        raise OSError(_errno.EOPNOTSUPP, "capsock sockets cannot be detached")

    def __del__(self) -> None:
        try:
            self._real_close()
        except Exception:
            pass

    # -- set-up --------------------------------------------------------------

    def bind(self, address: Any) -> None:
        addr = _sockaddr(self._family, address, passive=True)
        if self._tcp is not None and _take_preopened_listener(self, addr):
            return
        try:
            self._raw().bind(addr)
        except Err as e:
            raise _translate(e, denied=("bind", self._protocol(), addr)) from None

    def listen(self, backlog: int = 128) -> None:
        if self._preopened_listener:
            return  # listening already (see _take_preopened_listener)
        try:
            self._t().listen(max(0, min(backlog, SOMAXCONN)))
        except Err as e:
            raise _translate(e) from None

    def accept(self) -> tuple[socket, tuple[Any, ...]]:
        """``(connection, peer)``; the peer is what the host reports, i.e.
        ``("192.0.0.8", 0)`` / ``("100::", 0, 0, 0)`` under
        ``--peer-address=hidden``."""
        try:
            raw, peer = self._t().accept()
        except Err as e:
            raise _translate(e) from None
        conn = _adopt(raw, self._family, SOCK_STREAM)
        return conn, from_wit(peer)

    def _protocol(self) -> str:
        return "udp" if self._udp is not None else "tcp"

    def connect(self, address: Any) -> None:
        error = self._connect(address)
        if error:
            if error in (_errno.EINPROGRESS, _errno.EALREADY):
                raise BlockingIOError(error, os.strerror(error))
            assert self._pending_error is not None  # set by _connect with a nonzero errno
            raise self._pending_error
        return None

    def connect_ex(self, address: Any) -> int:
        """Like `connect`, but returns the errno (0 on success) instead of
        raising for connection errors; policy denials return EACCES."""
        return self._connect(address)

    def _connect(self, address: Any) -> int:
        addr = _sockaddr(self._family, address, passive=False)
        return self._connect_to(addr)

    def _connect_to(self, addr: IpSocketAddress) -> int:
        raw = self._raw()
        try:
            raw.connect(addr)
        except Err as e:
            exc = _translate(e, invalid_state=_errno.EISCONN,
                             denied=("connect", self._protocol(), addr))
            if isinstance(exc, BlockingIOError) and self._tcp is not None:
                already = self._connecting == addr
                self._connecting = addr
                return _errno.EALREADY if already else _errno.EINPROGRESS
            self._connecting = None
            if isinstance(exc, gaierror) or exc.errno is None:
                raise exc from None
            self._pending_error = exc
            return exc.errno
        self._connecting = None
        return 0

    # -- data ----------------------------------------------------------------

    def send(self, data: Any, flags: int = 0) -> int:
        if self._udp is not None:
            return self.sendto(data, flags, None)
        try:
            return send_bytes(self._t(), data)
        except Err as e:
            raise _translate(e, invalid_state=_errno.EPIPE
                             if self._shut_wr else _errno.ENOTCONN) from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        if self._udp is not None:
            self.sendto(view, flags, None)
            return
        raw = self._t()
        while view:
            try:
                sent = send_bytes(raw, view)
            except Err as e:
                raise _translate(e, invalid_state=_errno.EPIPE
                                 if self._shut_wr else _errno.ENOTCONN) from None
            view = view[sent:]

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        if address is None and not isinstance(flags_or_address, int):
            address = flags_or_address
        if self._udp is None:
            if address is not None:
                raise OSError(_errno.EISCONN, os.strerror(_errno.EISCONN))
            return self.send(data)
        target = None if address is None else _sockaddr(self._family, address, False)
        try:
            return send_datagram(self._udp, data, target)
        except Err as e:
            raise _translate(e, invalid_state=_errno.EDESTADDRREQ,
                             denied=None if target is None else ("send", "udp", target)) from None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self._udp is not None:
            return self.recvfrom(bufsize, flags)[0]
        raw = self._t()
        try:
            if flags and flags & _PEEK:
                return raw.peek(bufsize)
            return self._receiver.receive(raw, bufsize)
        except Err as e:
            raise _translate(e, invalid_state=_errno.ENOTCONN) from None

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if self._udp is None:
            data = self.recv(bufsize, flags)
            return data, None
        try:
            if flags and flags & _PEEK:
                d = self._udp.peek(bufsize)
                return d.data, from_wit(d.remote_address)
            data, sender = self._receiver.receive_datagram(self._udp, bufsize)
        except Err as e:
            raise _translate(e, invalid_state=_errno.EINVAL) from None
        return data, from_wit(sender)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data = self.recv(size, flags)
        view[:len(data)] = data
        return len(data)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = memoryview(buffer).cast("B")
        size = nbytes or len(view)
        data, sender = self.recvfrom(size, flags)
        view[:len(data)] = data
        return len(data), sender

    def shutdown(self, how: int) -> None:
        kinds = {SHUT_RD: socket_tcp.ShutdownType.RECEIVE, SHUT_WR: socket_tcp.ShutdownType.SEND,
                 SHUT_RDWR: socket_tcp.ShutdownType.BOTH}
        if how not in kinds:
            raise OSError(_errno.EINVAL, os.strerror(_errno.EINVAL))
        try:
            self._t().shutdown(kinds[how])
        except Err as e:
            raise _translate(e, invalid_state=_errno.ENOTCONN) from None
        if how != SHUT_RD:
            self._shut_wr = True

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Read ``file`` and `sendall` it (no zero-copy path here)."""
        if offset:
            file.seek(offset)
        total = 0
        while count is None or total < count:
            chunk = file.read(65536 if count is None else min(65536, count - total))
            if not chunk:
                break
            self.sendall(chunk)
            total += len(chunk)
        return total

    # -- modes ---------------------------------------------------------------

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    def settimeout(self, value: float | None) -> None:
        """None: blocking; 0: non-blocking (`BlockingIOError`); > 0: blocking
        calls raise `TimeoutError` after that many seconds (the host's
        ``set-timeout``)."""
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        raw = self._raw()
        try:
            raw.set_blocking(value != 0.0)
            if value != 0.0:
                raw.set_timeout(None if value is None else max(1, int(value * 1e9)))
        except Err as e:
            raise _translate(e) from None
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    # -- addresses and options -----------------------------------------------

    def getsockname(self) -> tuple[Any, ...]:
        try:
            return from_wit(self._raw().local_address())
        except Err as e:
            exc = _translate(e)
            if exc.errno == _errno.EINVAL:  # unbound: the wildcard, like Linux
                return ("::", 0, 0, 0) if self._family == AF_INET6 else ("0.0.0.0", 0)
            raise exc from None

    def getpeername(self) -> tuple[Any, ...]:
        try:
            return from_wit(self._raw().remote_address())
        except Err as e:
            raise _translate(e, invalid_state=_errno.ENOTCONN) from None

    _OPTIONS: dict[tuple[int, int], tuple[str, str, _Conversion]] = {
        # (level, option) -> (sockets that have it, WIT getter, value conversion);
        # "" = every socket. The WIT setter is "set_" + the getter.
        (SOL_SOCKET, SO_REUSEADDR): ("", "reuse_address", _FLAG),
        (SOL_SOCKET, SO_KEEPALIVE): ("tcp", "keep_alive_enabled", _FLAG),
        (SOL_SOCKET, SO_RCVBUF): ("", "receive_buffer_size", _INT),
        (SOL_SOCKET, SO_SNDBUF): ("", "send_buffer_size", _INT),
        (IPPROTO_TCP, TCP_NODELAY): ("tcp", "no_delay", _FLAG),
        (IPPROTO_TCP, TCP_KEEPIDLE): ("tcp", "keep_alive_idle_time", _SECONDS),
        (IPPROTO_IP, IP_TTL): ("v4", "hop_limit", _INT),
        (IPPROTO_IPV6, IPV6_UNICAST_HOPS): ("v6", "hop_limit", _INT),
    }

    def _option(self, level: int, option: int) -> tuple[Any, str, _Conversion]:
        entry = self._OPTIONS.get((level, option))
        raw = self._raw()
        if entry is not None:
            scope, getter, conversion = entry
            ok = (scope == "" or (scope == "tcp" and self._tcp is not None)
                  or (scope == "v4" and self._family == AF_INET)
                  or (scope == "v6" and self._family == AF_INET6))
            if ok:
                return raw, getter, conversion
        raise OSError(_errno.ENOPROTOOPT, f"{os.strerror(_errno.ENOPROTOOPT)} "
                                          f"(level {level}, option {option})")

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        """The options the contract has; others raise ``OSError(ENOPROTOOPT)``."""
        if isinstance(value, bytes | bytearray):
            value = int.from_bytes(value[:4], "little") if value else 0
        raw, getter, (to_wit, _) = self._option(level, option)
        try:
            getattr(raw, f"set_{getter}")(to_wit(value))
        except Err as e:
            raise _translate(e) from None

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> int:
        if (level, option) == (SOL_SOCKET, SO_TYPE):
            return int(self._type)
        if (level, option) == (SOL_SOCKET, SO_ERROR):
            return self._so_error()
        raw, getter, (_, from_wit_value) = self._option(level, option)
        try:
            return from_wit_value(getattr(raw, getter)())
        except Err as e:
            raise _translate(e) from None

    def _so_error(self) -> int:
        """The outcome of a non-blocking connect (0 while it is in progress)."""
        if self._connecting is None:
            return 0
        result = self._connect_to(self._connecting)
        return 0 if result in (_errno.EALREADY, _errno.EINPROGRESS) else result

    # -- files ---------------------------------------------------------------

    def makefile(self, mode: str = "r", buffering: int | None = None, *,
                 encoding: str | None = None, errors: str | None = None,
                 newline: str | None = None) -> Any:
        """A file object over the socket, as CPython's (``rb``, ``wb``, text)."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        self._io_refs += 1
        if buffering is None or buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: Any
        if reading and writing:
            buffer = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        text = io.TextIOWrapper(buffer, io.text_encoding(encoding), errors, newline)
        text.mode = mode  # type: ignore[misc]
        return text


SocketType = socket

#: set while `_adopt` builds a socket around an existing host handle
_adopting: Any = None


def _adopt(raw: Any, family: int, kind: int, name: str | None = None) -> socket:
    """A `socket` around a host handle (accepted or pre-opened)."""
    global _adopting
    _adopting = raw
    try:
        sock = socket(family, kind)
    finally:
        _adopting = None
    sock.name = name
    return sock


class SocketIO(io.RawIOBase):
    """Raw I/O over a socket, for `socket.makefile` (CPython's logic)."""

    def __init__(self, sock: socket, mode: str) -> None:
        if mode not in ("r", "w", "rw", "rb", "wb", "rwb"):
            raise ValueError(f"invalid mode: {mode!r}")
        io.RawIOBase.__init__(self)
        self._sock: socket | None = sock
        self._mode = mode if "b" in mode else mode + "b"
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._timeout_occurred = False

    def readinto(self, b: Any) -> int | None:
        self._checkClosed()
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        assert self._sock is not None
        try:
            return self._sock.recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise
        except BlockingIOError:
            return None

    def write(self, b: Any) -> int | None:
        self._checkClosed()
        assert self._sock is not None
        try:
            return self._sock.send(b)
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._reading

    def writable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return self._writing

    def seekable(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed socket.")
        return False

    def fileno(self) -> int:
        self._checkClosed()
        assert self._sock is not None
        return self._sock.fileno()

    @property
    def name(self) -> int:
        return -1 if self.closed or self._sock is None else self._sock.fileno()

    @property
    def mode(self) -> str:
        return self._mode

    def close(self) -> None:
        if self.closed:
            return
        io.RawIOBase.close(self)
        if self._sock is not None:
            self._sock._decref_socketios()
        self._sock = None


# ---------------------------------------------------------------- pre-opens

_preopens: dict[str, Any] = {}


def _fetch_preopens() -> None:
    for name, raw in _preopen.preopened_sockets():
        _preopens.setdefault(name, raw)


def preopened() -> list[str]:
    """Names of the pre-opened sockets not wrapped yet (``--tcplisten`` /
    ``--udpbind`` values, e.g. ``"127.0.0.1:8080"``)."""
    _fetch_preopens()
    return list(_preopens)


def from_preopened(name: str | None = None) -> socket:
    """Wrap a pre-opened socket (``socket.fromfd`` by name): a listening
    TCP socket for ``--tcplisten``, a bound UDP socket for ``--udpbind``.
    ``name=None`` takes the first one. Raises `OSError(EBADF)` if none."""
    _fetch_preopens()
    if name is None and _preopens:
        name = next(iter(_preopens))
    raw = _preopens.pop(name, None) if name is not None else None
    if raw is None:
        raise OSError(_errno.EBADF, f"no pre-opened socket {name!r} "
                                    f"(have: {', '.join(_preopens) or 'none'})")
    is_udp = str(raw.protocol().name).lower() == "udp"
    family = AF_INET6 if raw.address_family() == _wsocket.IpAddressFamily.IPV6 else AF_INET
    try:
        if is_udp:
            typed: Any = socket_udp.UdpSocket.from_socket(raw)
        else:
            typed = socket_tcp.TcpSocket.from_socket(raw)
    except Err as e:
        raise _translate(e) from None
    return _adopt(typed, family, SOCK_DGRAM if is_udp else SOCK_STREAM, name)


def _take_preopened_listener(sock: socket, addr: IpSocketAddress) -> bool:
    """``bind`` to exactly the address of a ``--tcplisten`` pre-open takes
    that listener instead (``listen`` then does nothing): a script that binds
    its own port then runs under ``capsock serve --instances N
    --tcplisten ADDR``, every instance accepting from the one listener.
    False (an ordinary bind follows) when no TCP pre-open has that name."""
    name = format_address(addr)
    _fetch_preopens()
    raw = _preopens.get(name)
    if raw is None or str(raw.protocol().name).lower() != "tcp":
        return False
    del _preopens[name]
    try:
        listener = socket_tcp.TcpSocket.from_socket(raw)
    except Err as e:
        raise _translate(e) from None
    fresh, sock._tcp = sock._tcp, listener
    if fresh is not None:
        fresh.__exit__(None, None, None)
    sock.name = name
    sock._preopened_listener = True
    sock.settimeout(sock._timeout)
    return True


def fromfd(fd: Any, family: int = AF_INET, type: int = SOCK_STREAM, proto: int = 0) -> socket:
    """``fromfd(name)`` with a pre-open name wraps it; descriptors do not exist."""
    if isinstance(fd, str):
        return from_preopened(fd)
    raise OSError(_errno.EBADF, "capsock sockets have no file descriptors; "
                                "use socket.from_preopened(name)")


# ---------------------------------------------------------------- resolution

_SERVICES = {"http": 80, "https": 443, "echo": 7, "domain": 53, "ftp": 21, "ssh": 22,
             "smtp": 25, "syslog": 514, "redis": 6379, "http-alt": 8080}


def _port(port: Any, flags: int) -> int:
    if port is None:
        return 0
    if isinstance(port, int):
        return port
    text = port.decode() if isinstance(port, bytes) else str(port)
    if text.isdigit():
        return int(text)
    if not flags & AI_NUMERICSERV and text in _SERVICES:
        return _SERVICES[text]
    raise gaierror(EAI_SERVICE if not flags & AI_NUMERICSERV else EAI_NONAME,
                   _EAI_TEXT[EAI_SERVICE])


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list[tuple[AddressFamily, SocketKind, int, str, Any]]:
    """``(family, type, proto, canonname, sockaddr)`` entries, as CPython's.

    IP literals (and ``None``: the wildcard with ``AI_PASSIVE``, else
    loopback; ``localhost``: 127.0.0.1 and ::1, see `_is_localhost`) are
    answered locally; names go to the resolver capability,
    so they need ``--allow-resolve`` (a denied name raises `PermissionError`,
    an unknown one `gaierror` ``EAI_NONAME``).
    """
    if family not in (AF_UNSPEC, AF_INET, AF_INET6):
        raise gaierror(EAI_FAMILY, _EAI_TEXT[EAI_FAMILY])
    if type not in (0, SOCK_STREAM, SOCK_DGRAM):
        raise gaierror(EAI_SOCKTYPE, _EAI_TEXT[EAI_SOCKTYPE])
    number = _port(port, flags)
    if isinstance(host, bytes):
        host = host.decode("idna")
    addresses: list[str]
    if host is None:
        passive = bool(flags & AI_PASSIVE)
        any4, any6 = ("0.0.0.0", "::") if passive else ("127.0.0.1", "::1")
        defaults: dict[int, list[str]] = {AF_INET: [any4], AF_INET6: [any6]}
        addresses = defaults.get(family, [any6, any4])
    elif _is_localhost(host):
        addresses = (["127.0.0.1"] if family == AF_INET else ["::1"] if family == AF_INET6
                     else ["127.0.0.1", "::1"])
    elif (ip := _ip(host)) is not None:
        if family and (ip.version == 6) != (family == AF_INET6):
            raise gaierror(EAI_FAMILY, f"Address family for hostname not supported: {host}")
        addresses = [str(ip)]
    elif flags & AI_NUMERICHOST:
        raise gaierror(EAI_NONAME, _EAI_TEXT[EAI_NONAME])
    else:
        families: dict[int, str] = {AF_INET: "ipv4", AF_INET6: "ipv6"}
        wanted = families.get(family)
        try:
            addresses = _resolver().resolve(host.rstrip(".") or host, wanted)
        except NetError as e:
            raise _from_net_error(e) from None
        if not addresses:
            raise gaierror(EAI_NONAME, _EAI_TEXT[EAI_NONAME])
    kinds = [SOCK_STREAM, SOCK_DGRAM] if not type else [SocketKind(type)]
    if proto:
        kinds = [k for k in kinds if proto == (IPPROTO_TCP if k == SOCK_STREAM else IPPROTO_UDP)]
    canon = host if flags & AI_CANONNAME and isinstance(host, str) else ""
    out: list[tuple[AddressFamily, SocketKind, int, str, Any]] = []
    for address in addresses:
        v6 = ":" in address
        sockaddr: Any = (address, number, 0, 0) if v6 else (address, number)
        for kind in kinds:
            out.append((AF_INET6 if v6 else AF_INET, kind,
                        IPPROTO_TCP if kind == SOCK_STREAM else IPPROTO_UDP, canon, sockaddr))
            canon = ""
    return out


def _is_localhost(host: str) -> bool:
    """``localhost`` (and ``*.localhost``) is loopback by definition (RFC
    6761), answered here without the resolver capability: the docs' servers
    bind ``'localhost'``, and an operator's ``tcp://127.0.0.1:PORT`` rule
    then covers them with no name rule (the policy fixes a ``localhost``
    rule to loopback the same way)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def gethostbyname(hostname: str) -> str:
    """The first IPv4 address of ``hostname`` (through the resolver)."""
    return getaddrinfo(hostname, None, AF_INET, SOCK_STREAM)[0][4][0]  # type: ignore[no-any-return]


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    infos = getaddrinfo(hostname, None, AF_INET, SOCK_STREAM)
    return hostname, [], [info[4][0] for info in infos]


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    """No capability offers reverse lookups: always `herror`."""
    raise herror(1, "Unknown host (capsock offers no reverse lookups)")


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """Numeric only (no reverse lookups); ``NI_NAMEREQD`` raises `gaierror`."""
    if flags & NI_NAMEREQD:
        raise gaierror(EAI_NONAME, _EAI_TEXT[EAI_NONAME])
    return str(sockaddr[0]), str(sockaddr[1])


def gethostname() -> str:
    """WASI has no host name: ``"localhost"``."""
    return "localhost"


def getfqdn(name: str = "") -> str:
    """``name`` itself (no reverse lookups), or `gethostname` for ``""``."""
    name = name.strip()
    return name if name and name not in ("0.0.0.0", "::") else gethostname()


# ---------------------------------------------------------------- helpers


def getdefaulttimeout() -> float | None:
    return _default_timeout


def setdefaulttimeout(value: float | None) -> None:
    global _default_timeout
    if value is not None and value < 0:
        raise ValueError("Timeout value out of range")
    _default_timeout = None if value is None else float(value)


def create_connection(address: tuple[Any, ...], timeout: Any = _GLOBAL_DEFAULT_TIMEOUT,
                      source_address: Any = None, *, all_errors: bool = False) -> socket:
    """Connect to ``(host, port)`` trying each resolved address (CPython's logic)."""
    host, port = address[0], address[1]
    errors: list[OSError] = []
    for af, kind, proto, _, sa in getaddrinfo(host, port, 0, SOCK_STREAM):
        sock = None
        try:
            sock = socket(af, kind, proto)
            if timeout is not _GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sa)
            return sock
        except OSError as exc:
            if not all_errors:
                errors.clear()
            errors.append(exc)
            if sock is not None:
                sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    if all_errors:
        raise ExceptionGroup("create_connection failed", errors)
    raise errors[0]


def has_dualstack_ipv6() -> bool:
    return False


def create_server(address: tuple[Any, ...], *, family: int = AF_INET,
                  backlog: int | None = None, reuse_port: bool = False,
                  dualstack_ipv6: bool = False) -> socket:
    """A listening TCP socket (SO_REUSEADDR set), as CPython's."""
    if reuse_port:
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        raise ValueError("dualstack_ipv6 not supported on this platform")
    sock = socket(family, SOCK_STREAM)
    try:
        try:
            sock.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
        except OSError:
            pass
        sock.bind(address)
        sock.listen(128 if backlog is None else backlog)
        return sock
    except BaseException:
        sock.close()
        raise


def inet_aton(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise OSError("illegal IP address string passed to inet_aton") from None


def inet_ntoa(packed: bytes) -> str:
    return str(ipaddress.IPv4Address(bytes(packed)))


def inet_pton(family: int, text: str) -> bytes:
    try:
        if family == AF_INET:
            return ipaddress.IPv4Address(text).packed
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise OSError("illegal IP address string passed to inet_pton") from None


def inet_ntop(family: int, packed: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(bytes(packed)))
    return str(ipaddress.IPv6Address(bytes(packed)))


def htons(x: int) -> int:
    return ((x & 0xFF) << 8) | ((x >> 8) & 0xFF)


def htonl(x: int) -> int:
    return int.from_bytes((x & 0xFFFFFFFF).to_bytes(4, "big"), "little")


ntohs, ntohl = htons, htonl


# An in-guest pair needs the socket class above; it lives in its own module.
from ._pair import socketpair  # noqa: E402
