"""The wasmtime engine capsock runs guests on: epoch interruption enabled.

A guest spinning in pure wasm never returns to the host, so nothing in
Python can stop it; wasmtime's epoch interruption makes the compiled code
check a counter at every function entry and loop back-edge, and
`engine.increment_epoch()` (callable from any thread) makes it trap at the
next check. That is how `KillSwitch.kill` stops a busy guest.

The checks change the compiled code, so a component compiled for one
setting cannot be loaded by an engine with the other: the compilation
cache keys on `is_interruptible(engine)` (cache.py). wasmtime-py cannot
read a Config back from an Engine, so engines made here are remembered;
an engine made elsewhere counts as not interruptible (a kill still wakes
a guest blocked in a capsock host call, but not one spinning in wasm).
"""

from __future__ import annotations

import weakref

from wasmtime import Config, Engine

_INTERRUPTIBLE: weakref.WeakSet[Engine] = weakref.WeakSet()


def new_engine(config: Config | None = None) -> Engine:
    """An engine whose guests a `KillSwitch` can stop even mid-computation.

    `config` (consumed, as `Engine(config)` does) lets an embedder set
    other options; epoch interruption is switched on in it regardless.
    """
    config = config if config is not None else Config()
    config.epoch_interruption = True
    engine = Engine(config)
    _INTERRUPTIBLE.add(engine)
    return engine


def is_interruptible(engine: Engine) -> bool:
    """Whether `engine` was made by `new_engine` (compiled with epoch checks)."""
    return engine in _INTERRUPTIBLE
