"""capsock_guest: a typed, Pythonic layer over capsock's WIT bindings.

Build with ``python guest/build.py`` (world ``capsock:app/app``): an app is
``guest/apps/<name>/app.py`` and can ``import capsock_guest``.

    import capsock_guest as cg

    def main(argv: list[str]) -> int:
        with cg.listen(("127.0.0.1", 0)) as server:
            print("listening on", cg.format_address(server.local_address()), flush=True)
            conn, peer = server.accept()
            with conn:
                conn.sendall(conn.recv(1024))
        return 0

    Run = cg.run_main(main)       # the wasi:cli/run export

Every error-code from the host is raised as `NetError` (an `OSError`) with
``.code`` the WIT name (``"access-denied"``, ...). Addresses are
``(host, port)`` tuples like the `socket` module's.

Everything here is imported at module top level on purpose: componentize-py
only bundles modules imported while the app is loaded at build time.
"""

from ._address import (
    Address,
    family_of,
    format_address,
    from_wit,
    ip_from_wit,
    ip_to_wit,
    is_ip_literal,
    parse_address,
    to_wit,
)
from ._cli import Command, run_command, run_main
from ._errors import NetError, code_name
from ._loop import Loop, Task
from ._poll import Pollable, poll
from ._preopen import preopened_sockets
from ._resolve import Resolver, resolve, resolver
from ._tcp import (
    IncompleteRead,
    TcpListener,
    TcpNetwork,
    TcpSocket,
    TcpStream,
    connect,
    listen,
    preopened_tcp_listeners,
    tcp_network,
)
from ._udp import UdpNetwork, UdpSocket, preopened_udp_sockets, udp_network

__all__ = [
    # event loop
    "Loop", "Task",
    # errors
    "NetError", "IncompleteRead", "code_name",
    # addresses
    "Address", "to_wit", "from_wit", "ip_to_wit", "ip_from_wit", "family_of",
    "parse_address", "format_address", "is_ip_literal",
    # TCP
    "TcpNetwork", "TcpSocket", "TcpListener", "TcpStream", "tcp_network",
    "listen", "connect", "preopened_tcp_listeners",
    # UDP
    "UdpNetwork", "UdpSocket", "udp_network", "preopened_udp_sockets",
    # pre-opens, resolver, polling
    "preopened_sockets", "Resolver", "resolver", "resolve", "Pollable", "poll",
    # the wasi:cli/run export
    "Command", "run_main", "run_command",
]
