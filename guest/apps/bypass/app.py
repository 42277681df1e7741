"""Try to reach the network *around* capsock, through CPython's own
`socket` module (wasi-libc -> the runtime's wasi:sockets).

    bypass HOST:PORT

Prints ``bypass connect: <ok|ExceptionName errno>`` (socket.create_connection,
which resolves through getaddrinfo first), ``bypass socket-connect: ...``
(socket.socket().connect, no name lookup) and ``bypass bind: ...``. errno
values are WASI's (e.g. EACCES is 2), not Linux's. Under capsock both must fail:
the host grants no network through wasi:sockets.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  getaddrinfo encodes host names with it,
import socket  # and componentize-py only bundles what is imported
import sys  # at build time (else: LookupError "unknown encoding")
from collections.abc import Callable

import capsock_guest as cg


def attempt(label: str, action: Callable[[], object]) -> bool:
    try:
        action()
    except OSError as e:
        print(f"bypass {label}: {type(e).__name__} {e.errno}", flush=True)
        return False
    except Exception as e:  # not an OSError: still a failure, say what
        print(f"bypass {label}: {type(e).__name__} -", flush=True)
        return False
    print(f"bypass {label}: ok", flush=True)
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: bypass HOST:PORT", file=sys.stderr)
        return 2
    host, port = cg.parse_address(argv[0])

    def connect() -> None:
        socket.create_connection((host, port), timeout=5).close()

    def bind() -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            s.listen()

    def raw_connect() -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect((host, port))

    attempt("connect", connect)
    attempt("socket-connect", raw_connect)
    attempt("bind", bind)
    return 0


Run = cg.run_main(main)
