"""A `PolicyConfig` (a policy file, the flags, or both merged) as the
parts a `Host` is made of: the one path from configuration to host.

`capsock run`/`serve` merge the file under the flags and hand the result
to `Host(policy=config)`; an embedder's `Host(policy="policy.toml")` loads
the file and comes here too. Every error names where the value came from
(``FILE:LINE [section] key`` or the flag).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..addresses import parse_host_port
from ..core.audit import AuditLog
from ..core.limits import LIMIT_FLAGS, Limits
from ..policy import MappingTable, Policy
from ..policy.config import PolicyConfig

if TYPE_CHECKING:
    from ..backends.base import Resolver
    from .host import DirSpec, TcpListenSpec, UdpBindSpec


class ConfigError(Exception):
    """A flag's or a policy file's value is wrong; the message names it."""


class HostParts:
    """What a config says a Host is made of (None: not said). A plain
    class, not a dataclass: see policy/rules.py."""

    def __init__(self, policy: Policy, limits: Limits, audit_mode: bool) -> None:
        self.policy = policy
        self.limits = limits
        self.audit_mode = audit_mode
        self.tcp_listen: list[TcpListenSpec] = []
        self.udp_bind: list[UdpBindSpec] = []
        self.dirs: list[DirSpec] = []
        self.resolver: Resolver | None = None
        self.peer_address: str | None = None
        self.audit_log: AuditLog | None = None
        self.mappings: MappingTable | None = None


def limits_of(config: PolicyConfig, base: Limits | None = None) -> Limits:
    """`base` (default `Limits()`) with the config's limits and quotas."""
    values = {name: getattr(base or Limits(), name) for _, name, _, _ in LIMIT_FLAGS}
    where_of: dict[str, str] = {}
    for flag, name, kind, _ in LIMIT_FLAGS:
        given = config.limits.get(flag.removeprefix("--"))
        if given is not None:
            value, where = given
            if kind is int and value != int(value):
                raise ConfigError(f"invalid {where}: {value} is not a whole number")
            values[name] = kind(value)
            where_of[name] = where
    rules = tuple((quota.rule.partition(" ")[2], quota.connections)
                  for quota in config.rule_quotas)
    try:
        return Limits(**values, connections_per_rule=(base or Limits()).connections_per_rule
                      + rules)
    except ValueError as error:
        where = next((w for n, w in where_of.items() if str(error).startswith(n)), "--max-*")
        raise ConfigError(f"invalid {where}: {error}") from None


def open_audit_log(config: PolicyConfig, max_bytes: int = 0,
                   backups: int = 5) -> AuditLog | None:
    """The audit log the config names (a file, `-` or syslog://...; files
    rotate at `max_bytes` when nonzero), or None; a ConfigError names
    where a bad value came from."""
    if config.audit_log is None:
        return None
    from ..core.audit_sinks import sink_for

    where, value = config.audit_log.where, config.audit_log.value
    try:
        return AuditLog(sink=sink_for(value, max_bytes, backups))
    except ValueError as error:
        raise ConfigError(f"invalid {where}: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot open {where} {value!r}: "
                          f"{error.strerror or error}") from None


def host_parts(config: PolicyConfig) -> HostParts:
    """Parse and open what `config` names (the audit log is opened here,
    so a bad path fails before any guest runs)."""
    from .host import DirSpec, RunError, TcpListenSpec, UdpBindSpec

    parts = HostParts(policy=config.policy(), limits=limits_of(config),
                      audit_mode=config.audit_mode)
    parts.mappings = config.mappings()
    for entry in config.tcplisten:
        try:
            parts.tcp_listen.append(TcpListenSpec.parse(entry.value))
        except ValueError as error:
            raise ConfigError(f"invalid {entry.where}: {error}") from None
    for entry in config.udpbind:
        try:
            parts.udp_bind.append(UdpBindSpec.parse(entry.value))
        except ValueError as error:
            raise ConfigError(f"invalid {entry.where}: {error}") from None
    for entry in config.dirs:
        try:
            spec = DirSpec.parse(entry.value)
            spec.check()
        except ValueError as error:
            raise ConfigError(f"invalid {entry.where}: {error}") from None
        except RunError as error:  # it names --dir: say where a file's entry is
            where = "" if entry.where.startswith("--") else f"{entry.where}: "
            raise ConfigError(f"{where}{error}") from None
        parts.dirs.append(spec)
    if config.dns is not None:
        try:
            server = parse_host_port(config.dns.value)
        except ValueError as error:
            raise ConfigError(f"invalid {config.dns.where}: {error}") from None
        if server.port == 0:
            raise ConfigError(f"invalid {config.dns.where}: {config.dns.value!r}: port 0")
        from ..backends.resolvers import DnsResolver  # dnspython: ~50 ms to import

        parts.resolver = DnsResolver(server)
    if config.peer_address is not None:
        parts.peer_address = config.peer_address.value
    parts.audit_log = open_audit_log(config)
    return parts


__all__ = ["ConfigError", "HostParts", "host_parts", "limits_of", "open_audit_log"]
