"""Running components: engine, compilation cache, instances."""

from .cache import load_component
from .host import DirSpec, Host, RunError, TcpListenSpec, UdpBindSpec

__all__ = ["DirSpec", "Host", "RunError", "TcpListenSpec", "UdpBindSpec", "load_component"]
