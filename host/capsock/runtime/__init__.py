"""Running components: engine, compilation cache, instances, kill switch."""

from .cache import load_component
from .engine import new_engine
from .host import DirSpec, Host, RunError, TcpListenSpec, UdpBindSpec
from .kill import GuestKilled, KillSwitch

__all__ = ["DirSpec", "GuestKilled", "Host", "KillSwitch", "RunError", "TcpListenSpec",
           "UdpBindSpec", "load_component", "new_engine"]
