"""capsock's WASI 0.2 host: every interface a networked component imports.

A socket's streams and pollables are `wasi:io` resources, and a Python
host cannot hand out wasmtime's own, so stdio, clocks, files and sockets
all come from here, linked by the registrar (`link(..., wasi=...)`) into
the same handle table and codec as `capsock:net`. One module per
interface group:

==================  ===========================================================
module              interfaces
==================  ===========================================================
``io``              wasi:io/error, poll, streams (the stream base classes)
``clocks_random``   wasi:clocks/monotonic-clock, wall-clock; wasi:random/*
``cli``             wasi:cli/environment, exit, stdin, stdout, stderr,
                    terminal-input, terminal-output, terminal-std*
``filesystem``      wasi:filesystem/types, preopens (the `--dir` pre-opens)
``sockets``         wasi:sockets/* (over the core, hence capsock's policy)
==================  ===========================================================
"""

from __future__ import annotations

from typing import Any

from . import sockets
from .cli import Cli
from .clocks_random import InsecureSeed, MonotonicClock, Random, WallClock
from .filesystem import Preopens, Types
from .io import Error, Poll, Streams
from .state import WasiState

#: `wasi:cli` interfaces one `Cli` object serves.
_CLI = ("environment", "exit", "stdin", "stdout", "stderr", "terminal-input",
        "terminal-output", "terminal-stdin", "terminal-stdout", "terminal-stderr")


def wasi_interfaces(state: WasiState) -> dict[str, Any]:
    """The implementations for one instance, by unversioned interface name."""
    cli = Cli(state)
    random = Random(state)
    found: dict[str, Any] = {
        "wasi:io/error": Error(state.context),
        "wasi:io/poll": Poll(state.context),
        "wasi:io/streams": Streams(state.context),
        "wasi:clocks/monotonic-clock": MonotonicClock(state),
        "wasi:clocks/wall-clock": WallClock(state),
        "wasi:random/random": random,
        "wasi:random/insecure": random,
        "wasi:random/insecure-seed": InsecureSeed(state),
        "wasi:filesystem/types": Types(state),
        "wasi:filesystem/preopens": Preopens(state),
    }
    for name in _CLI:
        found[f"wasi:cli/{name}"] = cli
    found.update(sockets.interfaces(state))
    return found


__all__ = ["WasiState", "wasi_interfaces"]
