"""Where capsock's WIT (``wit/*.wit``) and guest library (``capsock_guest``) are.

One function, `find_sources`, for every way capsock is installed: a wheel
ships both as package data inside this package (``toolchain/wit/`` and
``toolchain/guest/capsock_guest/``, mapped there from the checkout by
``setup.py``), while a checkout (tests, ``pip install -e .``) keeps them at
``wit/`` and ``guest/capsock_guest/`` of the repository this package sits in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .tools import BuildError

__all__ = ["Sources", "find_sources", "HERE"]

#: This package's folder (``capsock/toolchain``).
HERE = Path(__file__).resolve().parent
#: The world guests are built for, in the ``capsock:net`` package of
#: ``wit/``: the core plus every extension (`fast-io`, `tls`), which the
#: guest library uses (its byte lanes; its ``ssl`` module).
NET_WORLD_NAME = "imports-extended"
#: The core world alone (the conformance kit's core probe).
CORE_NET_WORLD_NAME = "imports"
_NET_PACKAGE = re.compile(r"^package\s+capsock:net@([0-9A-Za-z.+-]+);", re.M)


@dataclass(frozen=True)
class Sources:
    """capsock's WIT folder and the folder holding the ``capsock_guest`` package."""

    wit: Path
    #: The folder holding ``capsock_guest/`` (a componentize-py ``-p`` path).
    guest: Path

    @property
    def library(self) -> Path:
        return self.guest / "capsock_guest"

    def is_complete(self) -> bool:
        return any(self.wit.glob("*.wit")) and (self.library / "__init__.py").is_file()

    @property
    def net_world(self) -> str:
        """``capsock:net/imports-extended@<version>``, the version read from
        the WIT, so a bump of the contract needs no edit here."""
        return f"capsock:net/{NET_WORLD_NAME}@{self.net_version}"

    @property
    def core_net_world(self) -> str:
        """``capsock:net/imports@<version>``: the core alone."""
        return f"capsock:net/{CORE_NET_WORLD_NAME}@{self.net_version}"

    @property
    def net_version(self) -> str:
        for path in sorted(self.wit.glob("*.wit")):
            found = _NET_PACKAGE.search(path.read_text())
            if found:
                return found.group(1)
        raise BuildError(f"no `package capsock:net@...;` in {self.wit}/*.wit")


def find_sources() -> Sources:
    """The WIT and guest library shipped in this package (a wheel), else the
    ones of the checkout this package sits in (``host/capsock/toolchain``)."""
    shipped = Sources(HERE / "wit", HERE / "guest")
    if shipped.is_complete():
        return shipped
    root = HERE.parents[2]
    checkout = Sources(root / "wit", root / "guest")
    if checkout.is_complete():
        return checkout
    raise BuildError(f"capsock's WIT and guest library are missing: neither {shipped.wit} and "
                     f"{shipped.library} (an installed wheel) nor {checkout.wit} and "
                     f"{checkout.library} (a checkout) exist; reinstall capsock")
