"""Running components: engine, compilation cache, instances."""

from .cache import load_component
from .host import Host, RunError, TcpListenSpec, UdpBindSpec

__all__ = ["Host", "RunError", "TcpListenSpec", "UdpBindSpec", "load_component"]
