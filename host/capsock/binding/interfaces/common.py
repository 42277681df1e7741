"""WIT methods every socket resource shares: modes, options, lifetime.

`tcp-socket` and `udp-socket` spell these the same way in the contract,
so one mixin implements them over the core's `SocketCore`. The option
getters and setters are made from the option registry
(:mod:`capsock.backends.options`) when a resource class names its
protocol (``class TcpSocketResource(SocketResource, protocol="tcp")``):
one `name` / `set_name` pair per row, which the registrar finds by the
same naming convention as every other method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...backends.options import OptionKind, SocketOption, options_of
from ...core.tcp import TcpSocket
from ...core.udp import UdpSocket
from ..registrar import snake
from ..wit_values import duration_to_seconds
from .socket import Pollable


def _option_methods(option: SocketOption) -> tuple[Callable[..., Any], Callable[..., None]]:
    """The WIT getter and setter of one option: flags cross as `bool`,
    every other kind as the integer the core keeps."""
    if option.kind is OptionKind.FLAG:
        def get_flag(self: SocketResource) -> bool:
            return bool(self.core.get_option(option))

        def set_flag(self: SocketResource, value: bool) -> None:
            self.core.set_option(option, int(value))
        return get_flag, set_flag

    def get(self: SocketResource) -> int:
        return self.core.get_option(option)

    def set_(self: SocketResource, value: int) -> None:
        self.core.set_option(option, value)
    return get, set_


class SocketResource:
    """Mixin for resource classes holding a core socket in `self.core`."""

    core: TcpSocket | UdpSocket

    def __init_subclass__(cls, protocol: str = "", wasi: bool = False, **kwargs: Any) -> None:
        """Give a `tcp` / `udp` resource class its options' methods (those
        of `wasi:sockets` with `wasi`)."""
        super().__init_subclass__(**kwargs)
        for option in options_of(protocol, wasi):
            getter, setter = _option_methods(option)
            name = snake(option.name)
            getter.__name__, setter.__name__ = name, f"set_{name}"
            setattr(cls, name, getter)
            setattr(cls, f"set_{name}", setter)

    def set_blocking(self, value: bool) -> None:
        self.core.set_blocking(value)

    def set_timeout(self, timeout: int | None) -> None:
        self.core.set_timeout(duration_to_seconds(timeout))

    def subscribe(self, readiness: str) -> Pollable:
        return Pollable(self.core.context, self.core.sock, readable=readiness == "readable",
                        hold=self.core.quota_hold)

    def drop(self) -> None:
        self.core.close()
