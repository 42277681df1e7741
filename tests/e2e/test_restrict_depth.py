"""The `restrict` depth cap through a real guest (issue 15, defect 5).

The conformance guest's restrict probes narrow a capability once; with
`max_restrict_depth=0` that one `restrict` is past the cap. The chain's
cost (shared layers, one walk per check) is measured in
tests/unit/test_policy_restrict_depth.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from capsock import Host, Limits, Policy
from capsock.core.audit import AuditLog

from .test_limits import conformance_plan

PLAN: list[tuple[str, list[object]]] = [
    ("tcp-restrict-connect", [["allow-outbound=tcp://127.0.0.1:9"], "127.0.0.2:9"]),
    ("udp-restrict-send", [["allow-outbound=udp://127.0.0.1:9"], "127.0.0.2:9"]),
    ("resolve-restricted", [["allow-resolve=a.test"], "b.test"]),
]


def run(guests: dict[str, Path], tmp_path: Path, depth: int) -> tuple[list[str], list[str]]:
    log = AuditLog(tmp_path / "audit.jsonl")
    try:
        host = Host(policy=Policy.from_flags(allow_outbound=["tcp://*:*", "udp://*:*"],
                                             allow_resolve=["*"]),
                    limits=Limits(max_restrict_depth=depth), audit_log=log)
        got = conformance_plan(guests, tmp_path, host, PLAN)
    finally:
        log.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    return got, [f"{r['protocol']} {r['rule']}" for r in records if r["operation"] == "limit"]


def test_restrict_past_the_cap_is_limit_reached(guests: dict[str, Path],
                                                tmp_path: Path) -> None:
    got, limits = run(guests, tmp_path, 0)
    assert got == ["limit-reached"] * 3
    assert limits == ["tcp limit max_restrict_depth=0", "udp limit max_restrict_depth=0",
                      "dns limit max_restrict_depth=0"]


def test_restrict_within_the_cap_narrows(guests: dict[str, Path], tmp_path: Path) -> None:
    """One layer under a cap of 1: the restriction applies (the narrowed
    capability denies what its layer does not allow)."""
    got, limits = run(guests, tmp_path, 1)
    assert got == ["access-denied"] * 3
    assert limits == []
