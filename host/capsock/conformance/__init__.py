"""The conformance suite: cases (the contract's checklist), a harness that
runs them through the probe guests (``probe/app.py``, built for the core
world and for each extension), and reports."""

from .cases import CASES, SETUPS, ZONE, Case, Setup
from .harness import OsPeers, Probes, Result, run_all, table, to_json, to_junit

__all__ = ["CASES", "SETUPS", "ZONE", "Case", "OsPeers", "Probes", "Result", "Setup", "run_all",
           "table", "to_json", "to_junit"]
