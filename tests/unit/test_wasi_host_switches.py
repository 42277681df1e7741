"""bench/wasi_conformance.py states a setup's grants in the wasmtime CLI's
and jco's switches, or says it cannot: the table's n/e cells come from
here, so the mapping is checked on its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from capsock.conformance.wasi.cases import WASI_SETUPS, WasiSetup

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_wasi_conformance",
                                                  ROOT / "bench" / "wasi_conformance.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BENCH = _bench()


def _wasmtime(setup: WasiSetup) -> dict[str, str] | None:
    words = BENCH.wasmtime_switches(setup, {})
    if words is None:
        return None
    assert words[::2] == ["-S"] * (len(words) // 2)
    return dict(word.split("=") for word in words[1::2])


def test_all_allows_every_use() -> None:
    assert _wasmtime(WASI_SETUPS["all"]) == {"inherit-network": "y", "tcp": "y", "udp": "y",
                                             "allow-ip-name-lookup": "y"}
    assert BENCH.jco_switches(WASI_SETUPS["all"], {}) == ["CAPSOCK_JCO_DENY="]


def test_none_denies_at_the_address_check_not_at_create() -> None:
    """Sockets are created and their bind/connect/send refused, as capsock
    does; lookups are off."""
    assert _wasmtime(WASI_SETUPS["none"]) == {"inherit-network": "n", "tcp": "y", "udp": "y",
                                              "allow-ip-name-lookup": "n"}
    assert BENCH.jco_switches(WASI_SETUPS["none"], {}) == ["CAPSOCK_JCO_DENY=tcp,udp,lookup"]


def test_one_protocol_on_the_other_off() -> None:
    setup = WasiSetup("t", "tcp only", grants={"tcp": "all", "udp": "none", "lookup": "none"})
    assert _wasmtime(setup) == {"inherit-network": "y", "tcp": "y", "udp": "n",
                                "allow-ip-name-lookup": "n"}
    assert BENCH.jco_switches(setup, {}) == ["CAPSOCK_JCO_DENY=udp,lookup"]


def test_partial_rules_and_hidden_peers_cannot_be_expressed() -> None:
    for setup in WASI_SETUPS.values():
        partial = "some" in setup.grants.values() or setup.peer_address != "real"
        assert (_wasmtime(setup) is None) == partial, setup.name
        assert (BENCH.jco_switches(setup, {}) is None) == partial, setup.name
    assert _wasmtime(WASI_SETUPS["tcp-selective"]) is None
    assert _wasmtime(WASI_SETUPS["hidden"]) is None
