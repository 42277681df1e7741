"""The policy file (`capsock run --policy FILE`): TOML text to a config.

Pure: this module turns the *text* of a policy file into a
:class:`PolicyConfig` and merges configs; reading the file is
`loader.py`'s one job. Everything a flag of `capsock run` says about a
guest's network has a place in the file (sections below), so an operator
can keep a whole deployment's policy in one reviewed file, with comments,
and `capsock serve` and embedders (``Host(policy=PATH)``) read it the same
way.

Layout (keys are the flags' names without ``--``)::

    addr-pool = ["127.0.0.0/8"]          # top level: --addr-pool
    [resolve]   allow = [...]  deny = [...]
    [outbound]  allow = [...]  deny = [...]  allowed_outbound_hosts = [...]
    [inbound]   allow = [...]  deny = [...]
    [limits]    max-sockets = 64 ...     # every --max-* flag, and quotas
    [preopens]  tcplisten = [...]  udpbind = [...]  dir = [...]
    [host]      dns = "HOST:PORT"  peer-address = "real" | "hidden"
    [audit]     log = "FILE"  mode = "enforce" | "audit"

An ``allow`` entry of ``[outbound]`` or ``[inbound]`` may be a table
``{ rule = "tcp://db:5432", max-connections = 4 }``: the rule, and how
many connections it may carry at once (a quota, core/limits.py).
``allowed_outbound_hosts`` takes Spin's entries (`spin.py`).

**Flags and file combine** (:func:`merge`): rules and pre-opens add up
(the flags' after the file's; deny still wins over allow whatever their
origin, so a flag can narrow the file with a deny rule but widen it only
with an allow rule written out on the command line); a single value
(a limit, ``mode``, ``dns``, ``peer-address``, ``log``) given as a flag
replaces the file's.

**Errors name the file, the line and the rule.** tomllib reports the line
of a syntax error but keeps no position for values, so the line of a rule
is found by scanning the source: the first line, at or after its key's
line (``key =``, itself searched from the section's header), that holds
the rule as a quoted TOML string (``"tcp://x:1"`` or ``'tcp://x:1'``).
A value TOML spells differently (escapes, a multi-line string) is
reported at its key's line, which is still the right list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from .mapping import DEFAULT_VIRTUAL_RANGE, MappingTable, is_mapping, parse_mapping
from .policy import Policy
from .rules import PolicyError, parse_addr_pool, parse_address_rule, parse_resolve_rule

__all__ = ["LIMIT_KEYS", "RULE_KINDS", "Located", "PolicyConfig", "RuleQuota", "merge",
           "parse_policy_text"]

#: The rule lists, by flag name (the order `describe` prints them in).
RULE_KINDS: tuple[str, ...] = ("allow-outbound", "allow-inbound", "addr-pool", "deny-outbound",
                               "deny-inbound", "allow-resolve", "deny-resolve")

#: The keys of ``[limits]``: each is a ``--KEY`` flag (core/limits.py maps
#: them to `Limits` fields; the policy knows only their names).
LIMIT_KEYS: frozenset[str] = frozenset({
    "max-sockets", "max-backlog", "max-io-bytes", "max-buffer-bytes", "max-pollables",
    "max-datagram", "max-resolves-per-second", "max-restrict-depth", "max-memory",
    "max-call-bytes", "max-connections-per-destination", "max-bytes-per-second",
    "max-bytes-per-second-per-destination", "max-tls-handshakes-per-second",
    "max-tls-connections", "tls-handshake-timeout",
})

_MODES = ("enforce", "audit")
_PEER_ADDRESS = ("real", "hidden")

# section -> key -> what it is
_SECTIONS: dict[str, dict[str, str]] = {
    "resolve": {"allow": "allow-resolve", "deny": "deny-resolve"},
    "outbound": {"allow": "allow-outbound", "deny": "deny-outbound",
                 "allowed_outbound_hosts": "spin"},
    "inbound": {"allow": "allow-inbound", "deny": "deny-inbound"},
    "preopens": {"tcplisten": "tcplisten", "udpbind": "udpbind", "dir": "dir"},
    "host": {"dns": "dns", "peer-address": "peer-address", "virtual-range": "virtual-range"},
    "audit": {"log": "audit-log", "mode": "policy-mode"},
}


class Located(NamedTuple):
    """A value and where it came from: ``"FILE:LINE [section] key"`` or the
    flag (``"--allow-outbound"``); errors and `policy explain` quote it."""

    value: str
    where: str


class RuleQuota(NamedTuple):
    """``max-connections`` of one allow rule: `rule` is the decision's
    ``"<flag> <rule>"`` text, so the core can count by `Decision.rule`."""

    rule: str
    connections: int
    where: str


class PolicyConfig(NamedTuple):
    """Everything a policy file (or the flags) says, each value located.

    Build with :func:`parse_policy_text` or field by field (the CLI does,
    with flags as the locations); combine with :func:`merge`. Rules are
    validated when the config is made, so :meth:`policy` cannot fail on a
    config this module made.
    """

    rules: Mapping[str, tuple[Located, ...]] = {}
    #: ``[limits]`` values by flag name (``"max-sockets"``): (value, where).
    limits: Mapping[str, tuple[float, str]] = {}
    rule_quotas: tuple[RuleQuota, ...] = ()
    tcplisten: tuple[Located, ...] = ()
    udpbind: tuple[Located, ...] = ()
    dirs: tuple[Located, ...] = ()
    dns: Located | None = None
    peer_address: Located | None = None
    audit_log: Located | None = None
    mode: Located | None = None
    #: ``--virtual-range``: where mapped real names get guest-side addresses.
    virtual_range: Located | None = None
    #: Spin entries and the rules each became (for `policy check`).
    spin: tuple[tuple[Located, tuple[str, ...]], ...] = ()

    def policy(self) -> Policy:
        """The rules as a :class:`Policy` (one layer, deny wins); the `->`
        rules are not in it (:meth:`mappings`; `Host` adds each mapping's
        guest side as an allow rule)."""
        lists = {kind.replace("-", "_"): [entry.value for entry in self.rules.get(kind, ())
                                          if not is_mapping(entry.value)]
                 for kind in RULE_KINDS}
        return Policy.from_flags(**lists)

    def mappings(self) -> MappingTable | None:
        """The `->` rules as a :class:`MappingTable` (None: there are none)."""
        def arrows(kind: str) -> list[str]:
            return [e.value for e in self.rules.get(kind, ()) if is_mapping(e.value)]

        table = MappingTable.build(
            outbound=arrows("allow-outbound"), inbound=arrows("allow-inbound"),
            resolve=arrows("allow-resolve"),
            virtual_range=(self.virtual_range.value if self.virtual_range is not None
                           else DEFAULT_VIRTUAL_RANGE))
        return table if table else None

    @property
    def audit_mode(self) -> bool:
        """Whether ``mode = "audit"``: denials are logged, not enforced."""
        return self.mode is not None and self.mode.value == "audit"

    def where(self, decision_rule: str | None) -> str | None:
        """Where the rule a decision names (``"deny-outbound tcp://x:*"``)
        was written, or None (no rule, or a rule from elsewhere)."""
        if decision_rule is None:
            return None
        kind, _, text = decision_rule.partition(" ")
        for entry in self.rules.get(kind, ()):
            if entry.value.strip() == text or (kind == "addr-pool" and text in entry.value):
                return entry.where
        return None

    def describe(self) -> list[str]:
        """The effective configuration, one ``KEY VALUE  # where`` line
        each, in a fixed order (`capsock policy check`)."""
        lines = [f"{kind} {entry.value}  # {entry.where}"
                 for kind in RULE_KINDS for entry in self.rules.get(kind, ())]
        lines += [f"max-connections {quota.rule} = {quota.connections}  # {quota.where}"
                  for quota in self.rule_quotas]
        lines += [f"{key} {int(value) if value == int(value) else value}  # {where}"
                  for key, (value, where) in sorted(self.limits.items())]
        for key, values in (("tcplisten", self.tcplisten), ("udpbind", self.udpbind),
                            ("dir", self.dirs)):
            lines += [f"{key} {entry.value}  # {entry.where}" for entry in values]
        for key, single in (("dns", self.dns), ("peer-address", self.peer_address),
                            ("audit-log", self.audit_log), ("policy-mode", self.mode)):
            if single is not None:
                lines.append(f"{key} {single.value}  # {single.where}")
        return lines


def merge(base: PolicyConfig, over: PolicyConfig) -> PolicyConfig:
    """`over` (the flags) on `base` (the file): lists add up, `over`'s
    single values replace `base`'s (module docstring)."""
    rules = {kind: tuple(base.rules.get(kind, ())) + tuple(over.rules.get(kind, ()))
             for kind in RULE_KINDS}
    return PolicyConfig(
        rules=rules, limits={**base.limits, **over.limits},
        rule_quotas=base.rule_quotas + over.rule_quotas,
        tcplisten=base.tcplisten + over.tcplisten, udpbind=base.udpbind + over.udpbind,
        dirs=base.dirs + over.dirs, dns=over.dns or base.dns,
        peer_address=over.peer_address or base.peer_address,
        audit_log=over.audit_log or base.audit_log, mode=over.mode or base.mode,
        virtual_range=over.virtual_range or base.virtual_range, spin=base.spin + over.spin)


def validate_rule(kind: str, text: str, where: str) -> None:
    """Parse one rule of `kind` now. A PolicyError names `where`: the flag
    (as the flags' errors always did) or ``FILE:LINE [section] key``."""
    flag = where if where.startswith("--") else "rule"
    try:
        if is_mapping(text) and kind not in ("allow-outbound", "allow-inbound",
                                             "allow-resolve"):
            raise PolicyError(f"invalid rule '{text}' for --{kind}: only allow-outbound, "
                              "allow-inbound and allow-resolve take '->' mappings")
        if kind in ("allow-outbound", "allow-inbound", "allow-resolve") and is_mapping(text):
            parse_mapping(text, f"--{kind}")
        elif kind.endswith("resolve"):
            parse_resolve_rule(text, flag)
        elif kind == "addr-pool":
            parse_addr_pool(text)
        else:
            parse_address_rule(text, flag)
    except PolicyError as error:
        if flag != "rule":
            raise
        raise PolicyError(f"{where}: {error}") from None


class _Source:
    """The file's text, for finding the line a value was written on."""

    def __init__(self, filename: str, text: str) -> None:
        self.filename = filename
        self.lines = text.splitlines()

    def _header(self, section: str | None) -> int:
        if section is None:
            return 0
        pattern = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]")
        for index, line in enumerate(self.lines):
            if pattern.match(line):
                return index
        return 0

    def line_of(self, section: str | None, needle: str, key: bool = False,
                start: int | None = None) -> int:
        """1-based line of `needle` (a string value, or a key) in `section`
        (from 0-based line `start`, default the section's header)."""
        start = self._header(section) if start is None else start
        if key:
            patterns = [re.compile(rf"^\s*[\"']?{re.escape(needle)}[\"']?\s*=")]
        else:
            patterns = [re.compile(re.escape(f'"{needle}"')), re.compile(re.escape(f"'{needle}'"))]
        for index in range(start, len(self.lines)):
            if any(p.search(self.lines[index]) for p in patterns):
                return index + 1
        return start + 1

    def where(self, section: str | None, key: str, needle: str | None = None) -> str:
        line = self.line_of(section, key, True)
        if needle is not None:  # the value, searched from its key's line
            line = self.line_of(section, needle, False, start=line - 1)
        place = f"[{section}] {key}" if section else key
        return f"{self.filename}:{line} {place}"


def parse_policy_text(text: str, filename: str = "<policy>") -> PolicyConfig:
    """Parse a policy file's text. Raises :class:`PolicyError` naming the
    file, the line and the rule (or key) for anything it cannot use: a
    TOML syntax error, an unknown section or key, a value of the wrong
    type, a bad rule. Nothing is ignored."""
    import tomllib  # here: a `capsock run` without --policy never parses TOML

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{filename}: not valid TOML: {error}") from None
    source = _Source(filename, text)
    rules: dict[str, list[Located]] = {kind: [] for kind in RULE_KINDS}
    limits: dict[str, tuple[float, str]] = {}
    quotas: list[RuleQuota] = []
    singles: dict[str, Located] = {}
    lists: dict[str, list[Located]] = {"tcplisten": [], "udpbind": [], "dir": []}
    spin: list[tuple[Located, tuple[str, ...]]] = []

    for name, value in data.items():
        if name == "addr-pool":
            for item in _strings(value, source, None, name):
                where = source.where(None, name, item)
                validate_rule("addr-pool", item, where)
                rules["addr-pool"].append(Located(item, where))
        elif name == "limits":
            _parse_limits(value, source, limits)
        elif name in _SECTIONS:
            if not isinstance(value, dict):
                raise PolicyError(f"{source.where(None, name, None)}: expected a [{name}] "
                                  "table")
            for key, item in value.items():
                meaning = _SECTIONS[name].get(key)
                if meaning is None:
                    known = ", ".join(sorted(_SECTIONS[name]))
                    raise PolicyError(f"{source.where(name, key)}: unknown key {key!r} in "
                                      f"[{name}] (known: {known})")
                if meaning in RULE_KINDS:
                    _parse_rules(meaning, item, source, name, key, rules, quotas)
                elif meaning == "spin":
                    from .spin import spin_rules

                    for entry in _strings(item, source, name, key):
                        where = source.where(name, key, entry)
                        try:
                            converted = spin_rules(entry)
                        except PolicyError as error:
                            raise PolicyError(f"{where}: {error}") from None
                        spin.append((Located(entry, where), tuple(converted)))
                        rules["allow-outbound"].extend(Located(rule, where)
                                                       for rule in converted)
                elif meaning in lists:
                    lists[meaning].extend(Located(entry, source.where(name, key, entry))
                                          for entry in _strings(item, source, name, key))
                else:
                    singles[meaning] = _single(meaning, item, source, name, key)
        else:
            known = ", ".join(["addr-pool", "limits", *sorted(_SECTIONS)])
            raise PolicyError(f"{source.where(None, name)}: unknown section or key {name!r} "
                              f"(known: {known})")
    return PolicyConfig(
        rules={kind: tuple(entries) for kind, entries in rules.items()}, limits=limits,
        rule_quotas=tuple(quotas), tcplisten=tuple(lists["tcplisten"]),
        udpbind=tuple(lists["udpbind"]), dirs=tuple(lists["dir"]), dns=singles.get("dns"),
        peer_address=singles.get("peer-address"), audit_log=singles.get("audit-log"),
        mode=singles.get("policy-mode"), virtual_range=singles.get("virtual-range"),
        spin=tuple(spin))


def _strings(value: object, source: _Source, section: str | None, key: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list) or \
            not all(isinstance(item, str) for item in value):
        raise PolicyError(f"{source.where(section, key)}: expected a list of strings")
    return list(value)


def _parse_rules(kind: str, value: object, source: _Source, section: str, key: str,
                 rules: dict[str, list[Located]], quotas: list[RuleQuota]) -> None:
    if not isinstance(value, list):
        raise PolicyError(f"{source.where(section, key)}: expected a list of rules")
    for item in value:
        quota: object = None
        if isinstance(item, dict) and kind.startswith("allow-") and kind != "allow-resolve":
            unknown = set(item) - {"rule", "max-connections"}
            text = item.get("rule")
            if unknown or not isinstance(text, str):
                raise PolicyError(f"{source.where(section, key)}: a rule table is "
                                  "{ rule = \"PROTO://HOST:PORT\", max-connections = N }"
                                  + (f" (unknown {', '.join(sorted(unknown))})" if unknown else ""))
            quota = item.get("max-connections")
        elif isinstance(item, str):
            text = item
        else:
            raise PolicyError(f"{source.where(section, key)}: expected rule strings"
                              + (" or { rule = ..., max-connections = N } tables"
                                 if kind in ("allow-outbound", "allow-inbound") else ""))
        where = source.where(section, key, text)
        validate_rule(kind, text, where)
        rules[kind].append(Located(text, where))
        if quota is not None:
            if isinstance(quota, bool) or not isinstance(quota, int) or quota < 1:
                raise PolicyError(f"{where}: max-connections must be a positive integer")
            quotas.append(RuleQuota(f"{kind} {text.strip()}", quota, where))


def _parse_limits(value: object, source: _Source, limits: dict[str, tuple[float, str]]) -> None:
    if not isinstance(value, dict):
        raise PolicyError(f"{source.where(None, 'limits')}: expected a [limits] table")
    for key, item in value.items():
        where = source.where("limits", key)
        if key not in LIMIT_KEYS:
            raise PolicyError(f"{where}: unknown limit {key!r} (known: "
                              f"{', '.join(sorted(LIMIT_KEYS))})")
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise PolicyError(f"{where}: {key} must be a number")
        limits[key] = (item, where)


def _single(meaning: str, value: object, source: _Source, section: str, key: str) -> Located:
    where = source.where(section, key)
    if not isinstance(value, str):
        raise PolicyError(f"{where}: expected a string")
    choices = {"policy-mode": _MODES, "peer-address": _PEER_ADDRESS}.get(meaning)
    if choices is not None and value not in choices:
        raise PolicyError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return Located(value, where)
