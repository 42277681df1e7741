"""The in-memory backend: a deterministic virtual network, no OS sockets.

A :class:`VirtualNetwork` is a flat network of virtual hosts. Some of its
addresses are *local*: they belong to the machine the guest runs on, so a
guest may bind there (by default 127.0.0.0/8 and ::1, like a loopback-only
sandbox). Other addresses exist once something is bound on them or they
are declared with :meth:`VirtualNetwork.add_host`; a connection to an
address nobody declared is `remote-unreachable`, to a declared one with
nobody listening `connection-refused`.

:class:`MemoryBackend` implements the same :class:`~capsock.backends.base.Backend`
protocol as the OS backend, so the core (policy checks, state machines) and
the binding layer run unchanged on top of it. Python code in the same
process is a peer on the same network through a small client API
(:meth:`VirtualNetwork.listen`, :meth:`~VirtualNetwork.connect`,
:meth:`~VirtualNetwork.udp_bind`): that is how tests drive guests without
sockets, and how an embedder routes a guest's TCP to an in-process service.

Why it behaves as it does:

- **Same error codes as the OS, from the same table.** Every failure is
  raised as the errno Linux would report for the same situation and
  translated by :data:`~capsock.backends.errno_map.ERRNO_TO_CODE`, the one
  table the OS backend uses, so the two backends cannot drift apart.
- **Deterministic.** No randomness, no wall-clock dependence except
  timeouts: ephemeral ports are handed out in order from
  `ephemeral_ports`, so the same sequence of operations gives the same
  addresses in every run.
- **One lock per network.** All state lives under one
  `threading.Condition`; every change notifies it, and every blocking
  operation (accept, receive, a send into a full buffer, a connect into a
  full backlog, poll) waits on it with its timeout. Simple, and no lost
  wake-ups between sockets.
- **Streams** are pairs of byte pipes. A send buffer holds at most the
  sender's `send-buffer-size` bytes, so a peer that stops reading blocks
  (or, non-blocking, would-block) the writer, as TCP flow control does.
  `shutdown(send)` and `close` are a FIN (the peer reads the rest, then
  end of stream); closing with unread data sends an RST instead
  (`reset_on_unread_close`, on by default as on Linux): the peer reads
  what was already queued, then gets `connection-reset`. Sending to a
  closed peer is `connection-reset` at once (the OS lets the first send
  through and fails a later one).
- **Datagrams** are queued per bound socket up to its
  `receive-buffer-size` in bytes; beyond that, or to a port nobody bound,
  they are dropped silently, as UDP is. A datagram larger than
  `max_datagram` is `datagram-too-large`.
- **Non-blocking connect** reports would-block and completes (or fails)
  on the next connect, as a TCP handshake on Linux does, so guests written
  for the OS backend run unchanged.

Not modelled: `reuse-address` (TIME_WAIT does not exist here), IPv4-mapped
IPv6 (sockets are IPv6-only, as the OS backend makes them), ICMP errors on
UDP, hop limits and keep-alives (options are stored and read back only).

The package, one module per job (arrows point down the list):

==============  ===========================================================
`backend`       :class:`MemoryBackend`, the `Backend` adapter (poll)
`network`       :class:`VirtualNetwork`: addresses, bound sockets, names
`peers`         the in-process peer API (`VirtualConnection`, ...)
`stream`        virtual TCP sockets and their :class:`StreamState` enum
`datagram`      virtual UDP sockets
`endpoint`      what both socket kinds share (address, mode, options, waits)
==============  ===========================================================
"""

from .backend import MemoryBackend
from .datagram import MemoryDatagramSocket
from .network import MemoryResolver, VirtualNetwork
from .peers import AddressLike, VirtualConnection, VirtualDatagram, VirtualListener, to_address
from .stream import MemoryStreamSocket, StreamState

__all__ = ["AddressLike", "MemoryBackend", "MemoryDatagramSocket", "MemoryResolver",
           "MemoryStreamSocket", "StreamState", "VirtualConnection", "VirtualDatagram",
           "VirtualListener", "VirtualNetwork", "to_address"]
