"""`capsock policy suggest`: the narrowest rules that allow what was seen.

Pure: audit-log records (the JSON objects of core/audit.py's lines) in,
rules out. Run a workload with ``--policy-mode=audit --audit-log
audit.jsonl``; every operation the policy would have denied is a line with
``"would-deny": true`` (and, in enforce mode, ``"allowed": false``); each
becomes the narrowest rule that allows exactly it:

=====================  ====================================================
audit line             suggested rule
=====================  ====================================================
tcp/udp ``connect``,   ``allow-outbound PROTO://ADDRESS:PORT`` (one per
udp ``send``,          address and port seen; a UDP sender is judged by
``receive``,           the outbound rules)
``receive-drop``
tcp/udp ``bind``       ``allow-inbound PROTO://ADDRESS:PORT``; a bind to
                       port 0 gives ``PROTO://ADDRESS:*`` (the kernel picks
                       the port, and the host checks the port it picked)
dns ``resolve``        ``allow-resolve NAME``
=====================  ====================================================

An IPv6 address that embeds IPv4 addresses (NAT64, 6to4...) gets a rule
for each of them as well: the policy judges it as all of them.

A line whose rule is a deny rule cannot be fixed by an allow rule (deny
wins): it is reported as a comment naming the deny rule, as are limits
reached and lines this module does not know.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from .rules import embedded_ipv4, normalize_ip

__all__ = ["Suggestion", "suggest"]

_OUTBOUND_OPERATIONS = frozenset({"connect", "send", "receive", "receive-drop"})


class Suggestion(NamedTuple):
    """Rules by kind (``"allow-outbound"`` ...), in first-seen order, and
    notes for what no allow rule can fix."""

    rules: dict[str, list[str]]
    notes: list[str]

    def as_flags(self) -> list[str]:
        return [f"--{kind}={rule}" for kind, rules in self.rules.items() for rule in rules]

    def as_toml(self) -> str:
        """A policy file holding the rules (``[outbound]`` ``allow`` ...)."""
        sections = {"allow-outbound": ("outbound", "allow"), "allow-inbound": ("inbound", "allow"),
                    "allow-resolve": ("resolve", "allow")}
        out = ["# Suggested by `capsock policy suggest` from an audit log: the narrowest",
               "# rules that allow what the workload did. Review before use."]
        out += [f"# note: {note}" for note in self.notes]
        for kind, (section, key) in sections.items():
            rules = self.rules.get(kind)
            if rules:
                out += ["", f"[{section}]", f"{key} = ["]
                out += [f"    {_toml_string(rule)}," for rule in rules]
                out.append("]")
        return "\n".join(out) + "\n"


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split(target: str) -> tuple[list[str], int] | None:
    """(address texts as a rule writes them, port) of ``ADDR:PORT`` /
    ``[V6]:PORT``; None for anything else. An IPv6 address that embeds
    IPv4 addresses (NAT64, 6to4...) needs a rule for each of them too
    (the policy judges it as all of them), so all are given."""
    if target.startswith("["):
        host, sep, port = target[1:].partition("]:")
    else:
        host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    address = normalize_ip(address)
    forms = [address, *embedded_ipv4(address)]
    return [f"[{form}]" if form.version == 6 else str(form) for form in forms], int(port)


def suggest(records: Iterable[Mapping[str, object]]) -> Suggestion:
    """Rules and notes from audit records (see the module table)."""
    rules: dict[str, dict[str, None]] = {"allow-outbound": {}, "allow-inbound": {},
                                         "allow-resolve": {}}
    notes: dict[str, None] = {}
    any_port_binds: set[tuple[str, str]] = set()
    records = list(records)
    for record in records:  # port-0 binds first: they cover the ports picked later
        if _needs_rule(record) and record.get("operation") == "bind":
            split = _split(str(record.get("target", "")))
            if split is not None and split[1] == 0:
                any_port_binds.update((str(record.get("protocol")), host) for host in split[0])
    for record in records:
        if not _needs_rule(record):
            if record.get("operation") == "limit":
                notes[f"limit reached: {record.get('rule')} ({record.get('target')})"] = None
            continue
        operation = str(record.get("operation", ""))
        protocol = str(record.get("protocol", ""))
        target = str(record.get("target", ""))
        rule = record.get("rule")
        if isinstance(rule, str) and rule.startswith("deny-"):
            notes[f"{operation} {protocol}://{target} is denied by '{rule}': an allow rule "
                  "cannot override a deny rule; narrow or remove it"] = None
            continue
        if operation == "resolve" and protocol == "dns":
            rules["allow-resolve"][target] = None
            continue
        split = _split(target)
        if split is None or protocol not in ("tcp", "udp"):
            notes[f"no rule suggested for {operation} {protocol} {target}"] = None
            continue
        forms, port = split
        if operation not in _OUTBOUND_OPERATIONS and operation != "bind":
            notes[f"no rule suggested for {operation} {protocol} {target}"] = None
            continue
        for host in forms:
            if operation == "bind":
                any_port = (protocol, host) in any_port_binds
                rules["allow-inbound"][f"{protocol}://{host}:{'*' if any_port else port}"] = None
            else:
                rules["allow-outbound"][f"{protocol}://{host}:{port}"] = None
    return Suggestion({kind: list(found) for kind, found in rules.items() if found},
                      list(notes))


def _needs_rule(record: Mapping[str, object]) -> bool:
    """A decision the policy refused: a would-deny line (audit mode) or a
    denial (enforce mode), not a limit or a summary."""
    if record.get("operation") in ("limit", "suppressed"):
        return False
    return record.get("would-deny") is True or record.get("allowed") is False
