"""`capsock:net/tls`: TLS on the guest's TCP sockets, an extension.

Every function takes the socket as a borrowed `tcp-socket` and delegates to
`capsock.core.tls`. `client-handshake` returns `result<_, tls-error>`, not
`result<_, error-code>`, so it writes its own `err` cases (the registrar's
trampoline maps `NetError` only for `error-code` results): `NetError` is
the `socket` case, `TlsFailure` `verification-failed` or `handshake-failed`.
"""

from __future__ import annotations

from typing import Any

from ...backends.tls import TlsFailure
from ...core import tls
from ...core.context import InstanceContext
from ...errors import NetError
from ..codec import Case
from .socket_tcp import TcpSocketResource

_OK = Case("ok", None)


class Tls:
    """The `tls` interface for one instance."""

    resources: dict[str, type] = {}  # its resource is socket-tcp's (`use`d)

    def __init__(self, context: InstanceContext) -> None:
        self.context = context

    @staticmethod
    def client_handshake(socket: TcpSocketResource, server_name: str,
                         alpn_protocols: list[str]) -> Case:
        try:
            tls.client_handshake(socket.core, server_name, alpn_protocols)
        except NetError as error:
            return Case("err", Case("socket", error.code.value))
        except TlsFailure as failure:
            verify = failure.verify
            if verify is not None:
                return Case("err", Case("verification-failed", {
                    "reason": verify.reason, "code": verify.code, "message": verify.message}))
            return Case("err", Case("handshake-failed", failure.message))
        return _OK

    @staticmethod
    def session(socket: TcpSocketResource) -> dict[str, Any]:
        return tls.session(socket.core)

    @staticmethod
    def host_terminated(socket: TcpSocketResource) -> bool:
        return tls.host_terminated(socket.core)

    @staticmethod
    def close_notify(socket: TcpSocketResource) -> None:
        tls.close_notify(socket.core)
