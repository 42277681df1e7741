"""What one instance's WASI host knows besides its network context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ...core.context import InstanceContext


class WasiState:
    """Arguments, environment, stdio, directories, and how to tell that
    the guest is being stopped (`stopped()`: waits with no socket to
    interrupt poll it). `exit_code` is set by `wasi:cli/exit`.

    `stdout` None inherits the host's stdout; a path writes the guest's
    stdout to that file (the conformance harness reads it back).
    """

    def __init__(self, context: InstanceContext, *, args: Sequence[str] = (),
                 env: Sequence[tuple[str, str]] = (), stdout: str | Path | None = None,
                 dirs: Sequence[tuple[Path, str]] = (),
                 stopped: Callable[[], bool] = lambda: False) -> None:
        self.context = context
        self.args = list(args)
        self.env = list(env)
        self.stdout = stdout
        self.dirs = list(dirs)
        self.stopped = stopped
        self.exit_code: int | None = None
        #: Run at the instance's teardown (e.g. close a stdout file).
        self.closers: list[Callable[[], None]] = []

    def close(self) -> None:
        for close in self.closers:
            close()
        self.closers.clear()
