"""Socket activation: sockets an init system opened, taken over as pre-opens.

systemd (a socket unit, or `systemd-socket-activate`), and any launcher that
speaks its protocol, opens the listening sockets itself and starts capsock
with them as file descriptors 3, 4, ... and three variables (sd_listen_fds(3)):

- ``LISTEN_FDS``: how many descriptors, from 3 (``SD_LISTEN_FDS_START``);
- ``LISTEN_PID``: the process they are for. Another pid means the variables
  were inherited by accident (capsock was started by what systemd
  started): they are not ours, and capsock takes none of the descriptors;
- ``LISTEN_FDNAMES``: optional, colon-separated names, one per descriptor
  (``FileDescriptorName=`` of a socket unit, ``--fdname`` of
  systemd-socket-activate).

Each descriptor becomes a pre-open the guest sees in `preopened-sockets()`
under its name (its real bound address when the launcher gave none), as
`--tcplisten` and `--udpbind` pre-opens are. Before that, each is checked to
be one capsock can hand over: an IPv4 or IPv6 socket, a stream socket that
is listening (SO_ACCEPTCONN), or a datagram socket that is bound. Anything
else (a UNIX socket, a plain file, a connected stream, an unbound datagram
socket) is a start-up error naming the descriptor and its name, before any
guest runs: the operator's unit file is wrong, and a guest that cannot find
its socket would only fail later and less clearly.

Whatever the outcome, the variables are removed from capsock's environment
(sd_listen_fds(unset_environment=1)): nothing capsock starts afterwards
(`capsock serve`'s instances, a guest's environment, which never inherits
the host's anyway) takes them for its own. The descriptors taken are made
close-on-exec, so no process capsock executes inherits them either.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from typing import NamedTuple

#: sd_listen_fds(3): the first passed descriptor.
LISTEN_FDS_START = 3
#: The variables of the protocol, all removed from the environment.
VARIABLES = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """The inherited sockets cannot be used; the message names the fd."""


class InheritedSocket(NamedTuple):
    """A socket the launcher opened: its name, "tcp" or "udp", its family."""

    name: str
    protocol: str
    ipv6: bool
    sock: socket.socket

    @property
    def fd(self) -> int:
        return self.sock.fileno()


def inherited_sockets(environ: MutableMapping[str, str] | None = None,
                      pid: int | None = None) -> list[InheritedSocket]:
    """Take the sockets `environ` (default: `os.environ`) says were passed
    to process `pid` (default: this one), check each, and unset the
    variables. Empty when there are none or they are for another pid.
    Raises `ActivationError` (closing what it took) for a malformed
    variable or a descriptor that is not what a pre-open must be."""
    env = os.environ if environ is None else environ
    values = {name: env.pop(name, None) for name in VARIABLES}
    count_text, pid_text, names_text = (values[name] for name in VARIABLES)
    if count_text is None:
        return []
    if pid_text is None or not pid_text.strip().isdigit():
        raise ActivationError(f"LISTEN_PID={pid_text!r}: not a process id "
                              f"(LISTEN_FDS={count_text!r} was set)")
    if int(pid_text) != (os.getpid() if pid is None else pid):
        return []  # inherited from the process systemd started, not ours
    if not count_text.strip().isdigit():
        raise ActivationError(f"LISTEN_FDS={count_text!r}: not a number of descriptors")
    count = int(count_text)
    names: list[str] = names_text.split(":") if names_text is not None else []
    if names_text is not None and len(names) != count:
        raise ActivationError(f"LISTEN_FDNAMES={names_text!r} names {len(names)} "
                              f"descriptor(s), LISTEN_FDS={count}")
    taken: list[InheritedSocket] = []
    try:
        for index in range(count):
            fd = LISTEN_FDS_START + index
            taken.append(_check(fd, names[index] if names else None))
    except BaseException:
        for inherited in taken:
            inherited.sock.close()
        raise
    return taken


def _check(fd: int, name: str | None) -> InheritedSocket:
    label = f"fd {fd}" + (f" ({name!r})" if name else "")
    try:
        os.set_inheritable(fd, False)  # FD_CLOEXEC: nothing capsock executes gets it
    except OSError as error:
        raise ActivationError(f"{label}: not an open descriptor ({error.strerror})") from None
    try:
        # socket(fileno=...) reads family and type from the descriptor itself.
        sock = socket.socket(fileno=fd)
    except OSError as error:
        raise ActivationError(f"{label}: not a socket ({error.strerror})") from None
    try:
        family = sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
        kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ActivationError(f"{label}: a {_family_name(family)} socket; capsock "
                                  "pre-opens IPv4 and IPv6 sockets only")
        ipv6 = family == socket.AF_INET6
        if kind == socket.SOCK_STREAM:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ActivationError(f"{label}: a TCP socket that is not listening "
                                      "(pass a listening socket: ListenStream=)")
            protocol = "tcp"
        elif kind == socket.SOCK_DGRAM:
            host, port = sock.getsockname()[:2]
            if port == 0:
                raise ActivationError(f"{label}: a UDP socket that is not bound "
                                      "(ListenDatagram= binds it)")
            protocol = "udp"
        else:
            raise ActivationError(f"{label}: socket type {kind} (capsock pre-opens "
                                  "stream listeners and datagram sockets)")
        sock.setblocking(True)  # what the backend's own pre-opens start as
        bound = _format(sock.getsockname(), ipv6)
        return InheritedSocket(name or bound, protocol, ipv6, sock)
    except BaseException:
        sock.detach()  # not ours to close on a refusal: the launcher's fd stays as it was
        raise


def _family_name(family: int) -> str:
    try:
        return socket.AddressFamily(family).name
    except ValueError:
        return f"family {family}"


def _format(sockname: tuple[object, ...], ipv6: bool) -> str:
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ipv6 else f"{host}:{port}"


__all__ = ["LISTEN_FDS_START", "VARIABLES", "ActivationError", "InheritedSocket",
           "inherited_sockets"]
