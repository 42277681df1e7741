"""`capsock build --requirements`'s pure parts (toolchain/requirements.py):
the cache key follows the requirement bytes, and pip's failure becomes an
error naming the package (the e2e tests run pip for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from capsock.toolchain import BuildError
from capsock.toolchain.requirements import (
    GUEST_PYTHON,
    _explain,
    pip_command,
    requirements_hash,
)


def test_the_key_follows_the_bytes_and_the_with_names(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("h11==0.16.0\n")
    b.write_text("h11==0.16.0\n")
    assert requirements_hash([a], [], "pip 24") == requirements_hash([b], [], "pip 24")
    assert requirements_hash([a], [], "pip 24") != requirements_hash([a], [], "pip 25")
    assert requirements_hash([a], [], "pip 24") != requirements_hash([a], ["click"], "pip 24")
    b.write_text("h11==0.14.0\n")
    assert requirements_hash([a], [], "pip 24") != requirements_hash([b], [], "pip 24")
    with pytest.raises(BuildError, match="missing.txt"):
        requirements_hash([tmp_path / "missing.txt"], [], "pip 24")


def test_pip_installs_for_the_guest_wheels_only(tmp_path: Path) -> None:
    cmd = pip_command([tmp_path / "r.txt"], ["h11"], tmp_path / "t")
    joined = " ".join(cmd)
    assert "--only-binary=:all:" in cmd and "--target" in cmd
    assert f"--platform any --implementation py --abi none --python-version {GUEST_PYTHON}" \
        in joined
    assert cmd[-3:] == ["-r", str(tmp_path / "r.txt"), "h11"]


def test_a_missing_pure_wheel_is_named() -> None:
    said = _explain("WARNING: Location 'file:///x/' is ignored: it is neither a file nor a "
                    "directory.\nERROR: Could not find a version that satisfies the requirement "
                    "httptools (from versions: none)\nERROR: No matching distribution found for "
                    "httptools\n")
    assert said.startswith("--requirements: 'httptools' has no pure-Python wheel")
    assert "is ignored" not in said
    assert _explain("ERROR: something else\n").startswith("--requirements: pip install failed")
