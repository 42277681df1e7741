"""Reading a policy file: the one place in `capsock.policy` that does I/O.

Everything else in the package is pure; this module reads the bytes and
hands the text to `config.parse_policy_text`, so a test can parse a file's
text without a file and the rules stay impossible to influence by I/O.
"""

from __future__ import annotations

from pathlib import Path

from .config import PolicyConfig, parse_policy_text
from .rules import PolicyError

__all__ = ["load_policy"]


def load_policy(path: str | Path) -> PolicyConfig:
    """Read and parse the policy file at `path`; a PolicyError names it
    (a missing file, bad UTF-8, or anything `parse_policy_text` refuses)."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise PolicyError(f"{name}: cannot read the policy file: "
                          f"{error.strerror or error}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PolicyError(f"{name}: not UTF-8 ({error.reason} at byte {error.start})") from None
    return parse_policy_text(text, name)
