"""The conformance suite: cases (the contract's checklist), a harness that
runs them through the conformance guest, and reports."""

from .cases import CASES, SETUPS, ZONE, Case, Setup
from .harness import OsPeers, Result, run_all, table, to_json, to_junit

__all__ = ["CASES", "SETUPS", "ZONE", "Case", "OsPeers", "Result", "Setup", "run_all", "table",
           "to_json", "to_junit"]
