"""`capsock policy check | explain | suggest` (the I/O around the pure
`capsock.policy.config`, `.explain` and `.suggest`)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys

from .policy import PolicyError
from .policy.config import PolicyConfig
from .policy.explain import explain
from .policy.loader import load_policy
from .policy.rules import IPAddress
from .policy.suggest import suggest


def run_policy_tool(args: argparse.Namespace) -> int:
    """Exit 0 on success, 1 for a policy file that does not validate or
    an audit log that cannot be read, 2 for bad arguments."""
    try:
        if args.policy_command == "check":
            return _check(load_policy(args.file))
        if args.policy_command == "explain":
            return _explain(load_policy(args.file), args)
        return _suggest(args)
    except PolicyError as error:
        print(f"capsock: error: {error}", file=sys.stderr)
        return 1


def _check(config: PolicyConfig) -> int:
    config.policy()  # every rule was parsed when the file was; this cannot fail
    for entry, rules in config.spin:
        print(f"# Spin '{entry.value}' -> {', '.join(rules)}  ({entry.where})")
    lines = config.describe()
    print("\n".join(lines) if lines else "# no rules: every operation is denied")
    if config.audit_mode:
        print("# mode audit: nothing is denied, would-be denials are logged")
    return 0


def _explain(config: PolicyConfig, args: argparse.Namespace) -> int:
    resolved: dict[str, frozenset[IPAddress]] = {}
    for text in args.resolved:
        name, sep, address = text.partition("=")
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            print(f"capsock: error: --resolved {text!r}: expected NAME=ADDRESS", file=sys.stderr)
            return 2
        if not sep or not name:
            print(f"capsock: error: --resolved {text!r}: expected NAME=ADDRESS", file=sys.stderr)
            return 2
        key = name.lower().rstrip(".")
        resolved[key] = resolved.get(key, frozenset()) | {ip}
    print("\n".join(explain(config, args.operation, args.target, resolved)))
    return 0


def _suggest(args: argparse.Namespace) -> int:
    records = []
    try:
        with open(args.audit, encoding="utf-8") as audit:
            for number, line in enumerate(audit, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    print(f"capsock: error: {args.audit}:{number}: not a JSON line ({error.msg})",
                          file=sys.stderr)
                    return 1
                if isinstance(record, dict):
                    records.append(record)
    except OSError as error:
        print(f"capsock: error: cannot read {args.audit}: {error.strerror or error}",
              file=sys.stderr)
        return 1
    suggestion = suggest(records)
    if args.format in ("both", "flags"):
        if args.format == "both":
            print("# as flags:")
        print("\n".join(suggestion.as_flags()) or "# nothing to allow")
        for note in suggestion.notes if args.format == "flags" else ():
            print(f"# note: {note}")
    if args.format == "both":
        print("\n# as a policy file (--policy FILE):")
    if args.format in ("both", "toml"):
        print(suggestion.as_toml(), end="")
    if args.output is not None:
        args.output.write_text(suggestion.as_toml(), encoding="utf-8")
    return 0
