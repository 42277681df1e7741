"""Running components: engine, compilation cache, instances."""

from .cache import load_component
from .host import Host, RunError, TcpListenSpec

__all__ = ["Host", "RunError", "TcpListenSpec", "load_component"]
