"""`wasi:cli` 0.2: environment, exit, stdio, terminals.

Stdio is the host process's own descriptors 0, 1 and 2 (or a file for
stdout, `WasiState.stdout`), written and read directly with `os.write` /
`os.read`: the bytes are never split per character. No stream is a
terminal to the guest (`get-terminal-*` return none), as under wasmtime
with stdio that is not a tty.
"""

from __future__ import annotations

import os
import select
from typing import Any

from ..codec import Case
from ..registrar import GuestTrap
from .io import InputStream, OutputStream
from .state import WasiState

#: What `check-write` grants a stdio stream (writes to it block the call).
STDIO_PERMIT = 1 << 20


class StdinStream(InputStream):
    """The host's stdin, read without waiting when asked not to wait."""

    def __init__(self, state: WasiState) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.eof = False

    def _ready(self) -> bool:
        if self.eof:
            return True
        try:
            readable, _, _ = select.select([0], [], [], 0)
        except (OSError, ValueError):
            return True  # no stdin: a read reports it
        return bool(readable)

    def _read(self, max_len: int) -> bytes | None:
        if self.eof:
            return None
        if max_len == 0 or not self._ready():
            return b""
        data = os.read(0, min(max_len, STDIO_PERMIT))
        if not data:
            self.eof = True
            return None
        return data

    def _readiness(self) -> Any:
        return self._ready


class FdOutput(OutputStream):
    """stdout or stderr: each write goes to the descriptor at once."""

    def __init__(self, state: WasiState, fd: int) -> None:
        self.context = state.context
        self.stopped = state.stopped
        self.fd = fd

    def _check_write(self) -> int:
        return STDIO_PERMIT

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


class TerminalInput:
    """`resource terminal-input` (never handed out: stdio is no terminal)."""


class TerminalOutput:
    """`resource terminal-output` (never handed out)."""


class Cli:
    """Every `wasi:cli` interface but `run` (the guest exports that): one
    object serves environment, exit, stdin/stdout/stderr and the terminal
    interfaces, whose function names do not overlap."""

    resources: dict[str, type] = {"terminal-input": TerminalInput,
                                  "terminal-output": TerminalOutput}

    def __init__(self, state: WasiState) -> None:
        self.state = state
        self._stdout_fd: int | None = None
        state.closers.append(self.close)

    # -- environment -----------------------------------------------------------
    def get_environment(self) -> list[tuple[str, str]]:
        return list(self.state.env)

    def get_arguments(self) -> list[str]:
        return list(self.state.args)

    def initial_cwd(self) -> str | None:
        return None

    # -- exit ----------------------------------------------------------------------
    def exit(self, status: Case) -> None:
        self._exit(0 if status.tag == "ok" else 1)

    def exit_with_code(self, status_code: int) -> None:
        self._exit(status_code)

    def _exit(self, code: int) -> None:
        self.state.exit_code = code
        raise GuestTrap(f"exit status {code}")

    # -- stdio ---------------------------------------------------------------------
    def get_stdin(self) -> StdinStream:
        return StdinStream(self.state)

    def get_stdout(self) -> FdOutput:
        if self.state.stdout is None:
            return FdOutput(self.state, 1)
        if self._stdout_fd is None:
            self._stdout_fd = os.open(self.state.stdout,
                                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return FdOutput(self.state, self._stdout_fd)

    def get_stderr(self) -> FdOutput:
        return FdOutput(self.state, 2)

    def get_terminal_stdin(self) -> TerminalInput | None:
        return None

    def get_terminal_stdout(self) -> TerminalOutput | None:
        return None

    def get_terminal_stderr(self) -> TerminalOutput | None:
        return None

    def close(self) -> None:
        if self._stdout_fd is not None:
            os.close(self._stdout_fd)
            self._stdout_fd = None


