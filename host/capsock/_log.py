"""capsock's logger, with `logging` imported on first use.

`import logging` brings traceback, textwrap and string with it (~4 ms of
every `capsock run` start), and capsock logs only on errors, warnings and
`--verbose` denials. Modules write ``from .._log import log`` and use it
like the ``logging.getLogger("capsock")`` it stands for (embedders
configure that logger as usual). Until something is logged, nothing is
imported; unconfigured, Python's last-resort handler prints WARNING and
above to stderr as the bare message, as `capsock run` always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = ["log"]


class _Logger:
    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(logger(), name)


def logger() -> logging.Logger:
    """The real ``capsock`` logger (imports `logging`)."""
    import logging

    return logging.getLogger("capsock")


#: Typed as the Logger it forwards to.
log: logging.Logger = _Logger()  # type: ignore[assignment]
