"""The embedder example runs as documented (docs/embedding.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT, capsock_env


def test_embed_inprocess_example(guests: dict[str, Path]) -> None:
    build = guests["client"].parent
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "embed_inprocess.py"),
                           str(build)], capture_output=True, text=True, timeout=300,
                          env=capsock_env())
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[resolver] asked for svc.test" in out
    assert "[service] 127.0.0.1:49152 sent b'hello from the guest'" in out
    assert "received: echo: hello from the guest" in out
    # denied by the policy: no connection, and nothing resolved either
    assert "should not arrive" not in out
    assert "error: access-denied" in done.stderr
    assert out.count("[resolver]") == 1
    assert "listening on 127.0.0.1:8080" in out
    assert "[embedder] the echo guest answered b'ping from Python'" in out
    assert "[embedder] echo guest exit code 0" in out
