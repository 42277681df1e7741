"""Policy files (policy/config.py, loader.py, spin.py), `explain` and
`suggest` (pure), and the per-destination quotas (core/limits.py).

Property tests (hypothesis) check that a file says what the same flags
say, that every located line holds its rule, that `explain` reports the
decision the host makes, and that `suggest`'s rules allow exactly what was
seen.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capsock.addresses import SocketAddress
from capsock.core.limits import LIMIT_FLAGS, ByteBucket, Limits, QuotaState
from capsock.policy import Policy, PolicyError, Use, embedded_ipv4
from capsock.policy.config import LIMIT_KEYS, PolicyConfig, merge, parse_policy_text
from capsock.policy.explain import explain
from capsock.policy.loader import load_policy
from capsock.policy.spin import spin_rules
from capsock.policy.suggest import suggest

EXAMPLES = int(os.environ.get("CAPSOCK_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

FULL = """\
# A whole policy, every section.
addr-pool = ["127.0.0.0/8"]

[resolve]
allow = ["db.example.com", "*.api.example.com"]   # names the guest may look up
deny = ["evil.example.com"]

[outbound]
allow = [
    { rule = "tcp://db.example.com:5432", max-connections = 4 },
    "tcp://*.api.example.com:443",
]
deny = ["tcp://private:*", "udp://private:*"]
allowed_outbound_hosts = ["redis://cache.example.com"]

[inbound]
allow = ["tcp://loopback:8080"]
deny = ["udp://*:*"]

[limits]
max-sockets = 64
max-bytes-per-second = 1_000_000
max-connections-per-destination = 8

[preopens]
tcplisten = ["127.0.0.1:0"]
udpbind = []

[host]
peer-address = "hidden"

[audit]
mode = "audit"
"""


def test_a_whole_file_parses_and_locates_every_value() -> None:
    config = parse_policy_text(FULL, "svc.toml")
    assert [e.value for e in config.rules["allow-outbound"]] == [
        "tcp://db.example.com:5432", "tcp://*.api.example.com:443",
        "tcp://cache.example.com:6379"]
    assert config.rules["allow-outbound"][0].where == "svc.toml:10 [outbound] allow"
    assert config.rules["allow-outbound"][2].where == \
        "svc.toml:14 [outbound] allowed_outbound_hosts"
    assert config.rules["deny-outbound"][1].where == "svc.toml:13 [outbound] deny"
    assert config.rules["addr-pool"][0].where == "svc.toml:2 addr-pool"
    assert config.limits["max-sockets"] == (64, "svc.toml:21 [limits] max-sockets")
    assert config.rule_quotas[0].rule == "allow-outbound tcp://db.example.com:5432"
    assert config.rule_quotas[0].connections == 4
    assert config.audit_mode and config.peer_address is not None
    assert config.peer_address.value == "hidden"
    assert [e.value for e in config.tcplisten] == ["127.0.0.1:0"]
    # The policy is what the same flags make.
    assert config.policy() == Policy.from_flags(
        allow_outbound=["tcp://db.example.com:5432", "tcp://*.api.example.com:443",
                        "tcp://cache.example.com:6379"],
        deny_outbound=["tcp://private:*", "udp://private:*"],
        allow_inbound=["tcp://loopback:8080"], deny_inbound=["udp://*:*"],
        allow_resolve=["db.example.com", "*.api.example.com"],
        deny_resolve=["evil.example.com"], addr_pool=["127.0.0.0/8"])
    assert "deny-outbound tcp://private:*  # svc.toml:13 [outbound] deny" in config.describe()


@pytest.mark.parametrize(("text", "message"), [
    ('[outbound]\nallow = ["tcp://ok:1",\n  "tcp://x:99999"]\n',
     "f.toml:3 [outbound] allow: invalid rule 'tcp://x:99999'"),
    ('[resolve]\nallow = ["a*.example.com"]\n', "f.toml:2 [resolve] allow: invalid rule"),
    ('[outbnd]\nallow = []\n', "f.toml:1 outbnd: unknown section or key 'outbnd'"),
    ('[outbound]\npermit = []\n', "f.toml:2 [outbound] permit: unknown key 'permit'"),
    ('[outbound]\nallow = "tcp://x:1"\n', "f.toml:2 [outbound] allow: expected a list"),
    ('[outbound]\nallow = [1]\n', "f.toml:2 [outbound] allow: expected rule strings"),
    ('[limits]\nmax-socks = 1\n', "f.toml:2 [limits] max-socks: unknown limit"),
    ('[limits]\nmax-sockets = "1"\n', "f.toml:2 [limits] max-sockets: max-sockets must be a "
                                      "number"),
    ('[audit]\nmode = "warn"\n', "f.toml:2 [audit] mode: 'warn' is not one of enforce, audit"),
    ('[outbound]\nallow = [{ rule = "tcp://x:1", max-connections = 0 }]\n',
     "f.toml:2 [outbound] allow: max-connections must be a positive integer"),
    ('[outbound]\nallow = [{ rule = "tcp://x:1", max-conns = 1 }]\n', "unknown max-conns"),
    ('[outbound]\nallowed_outbound_hosts = ["http://self"]\n',
     "f.toml:2 [outbound] allowed_outbound_hosts: Spin allowed_outbound_hosts entry "
     "'http://self'"),
    ('[outbound]\nallow = ["tcp://x:1"\n', "f.toml: not valid TOML"),
    ('outbound = 1\n', "f.toml:1 outbound: expected a [outbound] table"),
])
def test_errors_name_the_file_line_and_rule(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy_text(text, "f.toml")
    assert message in str(caught.value)


def test_a_value_spelled_differently_is_reported_at_its_key() -> None:
    """tomllib keeps no positions: the scan falls back to the key's line
    when the source spells the rule with an escape."""
    text = '# c\n\n[outbound]\ndeny = []\nallow = [\n  "tcp://x:99\\u0039999"]\n'
    with pytest.raises(PolicyError, match=r"f.toml:5 \[outbound\] allow"):
        parse_policy_text(text, "f.toml")


def test_flags_add_rules_and_replace_single_values() -> None:
    file = parse_policy_text('[outbound]\nallow = ["tcp://a.test:1"]\n[limits]\n'
                             'max-sockets = 5\nmax-pollables = 7\n[audit]\nmode = "audit"\n',
                             "f.toml")
    from capsock.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--allow-outbound=tcp://b.test:2",
                                      "--max-sockets", "9", "--policy-mode", "enforce", "x"])
    merged = merge(file, config_from_args(args))
    assert [e.value for e in merged.rules["allow-outbound"]] == ["tcp://a.test:1",
                                                                  "tcp://b.test:2"]
    assert merged.limits["max-sockets"] == (9, "--max-sockets")
    assert merged.limits["max-pollables"][0] == 7
    assert not merged.audit_mode


def test_the_limit_keys_are_the_limit_flags() -> None:
    assert LIMIT_KEYS == {flag.removeprefix("--") for flag, _, _, _ in LIMIT_FLAGS}


def test_host_reads_a_path_or_a_config_the_same_way(tmp_path: Path) -> None:
    from capsock.runtime import Host

    path = tmp_path / "svc.toml"
    path.write_text(FULL)
    by_path = Host(policy=path)
    by_config = Host(policy=load_policy(path))
    for host in (by_path, by_config):
        assert host.checker == load_policy(path).policy()
        assert host.limits.max_sockets == 64
        assert host.limits.max_bytes_per_second == 1_000_000
        assert host.limits.connections_per_rule == (("tcp://db.example.com:5432", 4),)
        assert host.audit_mode and host.peer_address == "hidden"
        assert [str(spec.address) for spec in host.tcp_listen] == ["127.0.0.1:0"]
    explicit = Host(policy=path, limits=Limits(max_sockets=3), peer_address="real")
    assert explicit.limits.max_sockets == 3 and explicit.peer_address == "real"
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        Host(policy=tmp_path / "missing.toml")


def test_cli_builds_the_host_from_file_and_flags(tmp_path: Path) -> None:
    from capsock.cli import ConfigError, build_parser, host_from_args

    path = tmp_path / "svc.toml"
    path.write_text('[limits]\nmax-sockets = 5\n[outbound]\nallow = ["tcp://a.test:1"]\n')
    parser = build_parser()
    host = host_from_args(parser.parse_args(["run", "--policy", str(path), "--max-sockets", "7",
                                             "--deny-outbound=tcp://a.test:*", "x"]))
    assert host.limits.max_sockets == 7
    assert host.checker == Policy.from_flags(allow_outbound=["tcp://a.test:1"],
                                             deny_outbound=["tcp://a.test:*"])
    path.write_text('[limits]\nmax-sockets = 0\n')
    with pytest.raises(ConfigError, match=r"svc.toml:2 \[limits\] max-sockets"):
        host_from_args(parser.parse_args(["run", "--policy", str(path), "x"]))
    with pytest.raises(ConfigError, match="--max-rule-connections"):
        host_from_args(parser.parse_args(["run", "--max-rule-connections", "tcp://x:1", "x"]))


# -- Spin's allowed_outbound_hosts ---------------------------------------------

@pytest.mark.parametrize(("entry", "rules"), [
    ("tcp://db.example.com:5432", ["tcp://db.example.com:5432"]),
    ("udp://10.0.0.1:53", ["udp://10.0.0.1:53"]),
    ("*://*.example.com:*", ["tcp://*.example.com:*", "udp://*.example.com:*"]),
    ("*://*:*", ["tcp://*:*", "udp://*:*"]),
    ("redis://cache", ["tcp://cache:6379"]),
    ("postgres://db", ["tcp://db:5432"]),
    ("mysql://db", ["tcp://db:3306"]),
    ("mqtt://broker", ["tcp://broker:1883"]),
    ("http://api.example.com", ["tcp://api.example.com:80"]),
    ("https://api.example.com/", ["tcp://api.example.com:443"]),
    ("https://api.example.com:8443", ["tcp://api.example.com:8443"]),
    ("tcp://10.0.0.0/8:*", ["tcp://10.0.0.0/8:*"]),
    ("tcp://fd00::/8:80", ["tcp://[fd00::/8]:80"]),
    ("postgres://[fd00::1]", ["tcp://[fd00::1]:5432"]),
    ("http://x.test:8000..8003", ["tcp://x.test:8000-8002"]),
])
def test_spin_entries_that_map(entry: str, rules: list[str]) -> None:
    assert spin_rules(entry) == rules


@pytest.mark.parametrize(("entry", "reason"), [
    ("http://self", "'self'"), ("tcp://x", "no default port"), ("ftp://x", "unknown scheme"),
    ("insecure:allow-all", "not accepted"), ("mqtt://{{ host }}", "templates"),
    ("http://{a,b}.com", "templates"), ("http://x:80/path", "path"), ("x.com:80", "no scheme"),
    ("http://x:9..9", "empty"), ("tcp://bad host:1", "not a rule"), ("tcp://:80", "no host"),
    ("redis://", "no host"),
])
def test_spin_entries_that_do_not_map(entry: str, reason: str) -> None:
    with pytest.raises(PolicyError, match=reason):
        spin_rules(entry)


# -- files say what flags say ---------------------------------------------------

hosts = st.sampled_from(["10.0.0.0/8", "127.0.0.1", "[::1]", "*", "private", "metadata",
                         "db.example.com", "*.example.com", "localhost", "[fd00::/8]"])
ports = st.sampled_from(["*", "80", "5432", "1000-2000"])
address_rules = st.builds(lambda proto, host, port: f"{proto}://{host}:{port}",
                          st.sampled_from(["tcp", "udp"]), hosts, ports)
resolve_rules = st.sampled_from(["*", "db.example.com", "*.example.com", "x.test"])


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


@SETTINGS
@given(st.lists(address_rules, max_size=4), st.lists(address_rules, max_size=4),
       st.lists(address_rules, max_size=3), st.lists(resolve_rules, max_size=3),
       st.booleans())
def test_a_file_says_what_the_same_flags_say(allow: list[str], deny: list[str],
                                             inbound: list[str], resolve: list[str],
                                             comments: bool) -> None:
    note = "  # a comment with \"tcp://nothing:1\" in it" if comments else ""
    text = (f"# policy\n[outbound]{note}\nallow = {_toml_list(allow)}\n"
            f"deny = {_toml_list(deny)}{note}\n\n[inbound]\nallow = {_toml_list(inbound)}\n"
            f"[resolve]\nallow = {_toml_list(resolve)}\n")
    config = parse_policy_text(text, "p.toml")
    assert config.policy() == Policy.from_flags(allow_outbound=allow, deny_outbound=deny,
                                                allow_inbound=inbound, allow_resolve=resolve)
    lines = text.splitlines()
    for entries in config.rules.values():
        for entry in entries:
            number = int(entry.where.split(":")[1].split()[0])
            assert f'"{entry.value}"' in lines[number - 1]


# -- explain reports the host's decision ----------------------------------------

uses = st.sampled_from([Use.TCP_CONNECT, Use.TCP_BIND, Use.UDP_SEND, Use.UDP_BIND,
                        Use.UDP_CONNECT, Use.UDP_RECEIVE])
ips = st.sampled_from(["10.0.0.5", "127.0.0.1", "169.254.169.254", "8.8.8.8", "::1",
                       "fd00::1", "64:ff9b::a00:5", "203.0.113.7"])


class _At:
    def __init__(self, ip: str, port: int) -> None:
        self.ip = ipaddress.ip_address(ip)
        self.port = port


@SETTINGS
@given(st.lists(address_rules, max_size=4), st.lists(address_rules, max_size=3), uses, ips,
       st.sampled_from([80, 5432, 1500, 9]))
def test_explain_names_the_deciding_rule(allow: list[str], deny: list[str], use: Use,
                                         ip: str, port: int) -> None:
    text = f"[outbound]\nallow = {_toml_list(allow)}\ndeny = {_toml_list(deny)}\n" \
           f"[inbound]\nallow = {_toml_list(allow)}\n"
    config = parse_policy_text(text, "p.toml")
    decision = config.policy().check(use, _At(ip, port), {})
    target = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    lines = explain(config, use.value, target)
    assert lines[0] == f"{use.value} {target}: {'allowed' if decision.allowed else 'denied'}"
    if decision.rule is None:
        assert "no rule allows it" in lines[1]
    else:
        where = config.where(decision.rule)
        assert lines[1] == f"  by {decision.rule}  ({where})"
        assert where is not None and where.startswith("p.toml:")


def test_explain_follows_a_name_to_its_addresses() -> None:
    config = parse_policy_text('[outbound]\nallow = ["tcp://db.test:5432"]\n'
                               'deny = ["tcp://private:*"]\n', "p.toml")
    lines = explain(config, "tcp-connect", "db.test:5432",
                    {"db.test": frozenset({ipaddress.ip_address("10.0.0.5"),
                                           ipaddress.ip_address("203.0.113.1")})})
    assert lines == [
        "resolve db.test: allowed", "  by allow-outbound tcp://db.test:5432  "
        "(p.toml:2 [outbound] allow)",
        "tcp-connect 10.0.0.5:5432 (db.test): denied",
        "  by deny-outbound tcp://private:*  (p.toml:3 [outbound] deny)",
        "  10.0.0.5 is in group private (10.0.0.0/8)",
        "  a deny rule wins over every allow rule",
        "tcp-connect 203.0.113.1:5432 (db.test): allowed",
        "  by allow-outbound tcp://db.test:5432  (p.toml:2 [outbound] allow)"]
    assert "pass --resolved db.test=ADDRESS" in explain(config, "tcp-connect",
                                                         "db.test:5432")[-1]
    with pytest.raises(PolicyError, match="unknown operation"):
        explain(config, "tcp-jump", "1.2.3.4:5")


# -- suggest: what was seen, and no more ----------------------------------------

events = st.tuples(st.sampled_from(["connect", "send", "bind", "receive"]),
                   st.sampled_from(["tcp", "udp"]), ips, st.integers(1, 65535))


def _use(operation: str, protocol: str) -> Use:
    return {("connect", "tcp"): Use.TCP_CONNECT, ("connect", "udp"): Use.UDP_CONNECT,
            ("send", "udp"): Use.UDP_SEND, ("send", "tcp"): Use.TCP_CONNECT,
            ("bind", "tcp"): Use.TCP_BIND, ("bind", "udp"): Use.UDP_BIND,
            ("receive", "udp"): Use.UDP_RECEIVE, ("receive", "tcp"): Use.TCP_CONNECT}[
        (operation, protocol)]


@SETTINGS
@given(st.lists(events, min_size=1, max_size=8), st.lists(st.sampled_from(
    ["db.test", "api.example.com", "x.y.z.test"]), max_size=3), st.booleans())
def test_suggested_rules_allow_what_was_seen_and_no_other_port(
        seen: list[tuple[str, str, str, int]], names: list[str], enforce: bool) -> None:
    seen = [(op if proto == "udp" or op in ("connect", "bind") else "connect", proto, ip, port)
            for op, proto, ip, port in seen]
    records: list[dict[str, object]] = [
        {"operation": op, "protocol": proto,
         "target": f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}",
         "allowed": not enforce, "rule": None, **({} if enforce else {"would-deny": True})}
        for op, proto, ip, port in seen]
    records += [{"operation": "resolve", "protocol": "dns", "target": name,
                 "allowed": False, "rule": None} for name in names]
    records.append({"operation": "connect", "protocol": "tcp", "target": "1.2.3.4:1",
                    "allowed": True, "rule": "allow-outbound tcp://1.2.3.4:1"})
    suggestion = suggest(records)
    config = parse_policy_text(suggestion.as_toml(), "suggested.toml")
    policy = config.policy()
    for op, proto, ip, port in seen:
        assert policy.check(_use(op, proto), _At(ip, port), {}).allowed, (op, proto, ip, port)
    # No wider than what was seen: one rule per address and port, no more.
    def written(ip: str) -> list[str]:  # the address, and each IPv4 it embeds
        forms = [ipaddress.ip_address(ip), *embedded_ipv4(ipaddress.ip_address(ip))]
        return [f"[{form}]" if form.version == 6 else str(form) for form in forms]
    expected_out = {f"{proto}://{form}:{port}" for op, proto, ip, port in seen
                    if op != "bind" for form in written(ip)}
    expected_in = {f"{proto}://{form}:{port}" for op, proto, ip, port in seen
                   if op == "bind" for form in written(ip)}
    assert set(suggestion.rules.get("allow-outbound", [])) == expected_out
    assert set(suggestion.rules.get("allow-inbound", [])) == expected_in
    for name in names:
        assert policy.check_resolve(name).allowed
    assert not policy.check_resolve("unseen.test").allowed
    assert "tcp://1.2.3.4:1" not in suggestion.as_toml()  # allowed lines need nothing


def test_suggest_covers_port_zero_binds_and_reports_deny_rules() -> None:
    records = [
        {"operation": "bind", "protocol": "tcp", "target": "127.0.0.1:0", "allowed": False,
         "rule": None},
        {"operation": "bind", "protocol": "tcp", "target": "127.0.0.1:43211", "allowed": False,
         "rule": None},
        {"operation": "connect", "protocol": "tcp", "target": "10.0.0.5:5432", "allowed": True,
         "rule": "deny-outbound tcp://private:*", "would-deny": True},
        {"operation": "limit", "protocol": "tcp", "target": "connect 1.2.3.4:1",
         "allowed": False, "rule": "limit max_sockets=1"},
        {"operation": "suppressed", "protocol": "", "target": "9 more", "allowed": False,
         "rule": None, "count": 9},
    ]
    suggestion = suggest(records)
    assert suggestion.rules == {"allow-inbound": ["tcp://127.0.0.1:*"]}
    assert suggestion.as_flags() == ["--allow-inbound=tcp://127.0.0.1:*"]
    assert any("deny-outbound tcp://private:*" in note for note in suggestion.notes)
    assert any("limit max_sockets=1" in note for note in suggestion.notes)


# -- quotas ----------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_byte_bucket_allows_what_it_holds_and_waits_off_debt() -> None:
    clock = Clock()
    bucket = ByteBucket(100, clock)
    assert bucket.available() == 100
    bucket.charge(60)
    assert bucket.available() == 40
    bucket.charge(40)
    assert bucket.available() == 0 and bucket.wait_time() == pytest.approx(0.01)
    clock.now = 0.5
    assert bucket.available() == 50
    bucket.charge(500)  # a datagram: into debt, at most one second's worth
    clock.now = 1.5
    assert bucket.available() == 0
    clock.now = 1.6
    assert bucket.available() == 10
    clock.now = 9.0
    assert bucket.available() == 100  # holds one second's worth, no more


def test_connection_quotas_count_per_destination_and_per_rule() -> None:
    limits = Limits(max_connections_per_destination=2,
                    connections_per_rule=(("tcp://db.test:5432", 3),))
    state = QuotaState(limits)
    rule = "allow-outbound tcp://db.test:5432"
    a, b = ("10.0.0.1", 5432), ("10.0.0.2", 5432)
    assert state.open_connection(a, rule) is None
    assert state.open_connection(a, rule) is None
    assert state.open_connection(a, rule) == ("max_connections_per_destination", 2)
    assert state.open_connection(b, rule) is None
    assert state.open_connection(b, rule) == (f"max-connections of {rule}", 3)
    state.close_connection(a, rule)
    assert state.open_connection(b, rule) is None
    assert state.open_connection(b, "allow-outbound tcp://other:1") == \
        ("max_connections_per_destination", 2)


def test_instance_and_destination_buckets_both_bind() -> None:
    state = QuotaState(Limits(max_bytes_per_second=100, max_bytes_per_second_per_destination=30))
    assert state.allowance(("a", 1), 50) == 30
    state.charge(("a", 1), 30)
    assert state.allowance(("a", 1), 50) == 0
    for peer in ("b", "c"):
        assert state.allowance((peer, 1), 100) == 30
        state.charge((peer, 1), 30)
    assert state.allowance(("d", 1), 100) == 10  # the instance's bucket is nearly spent


def test_non_blocking_sockets_get_would_block_when_the_rate_is_spent() -> None:
    from capsock.addresses import SocketAddress
    from capsock.backends.memory import MemoryBackend, VirtualNetwork
    from capsock.core.context import InstanceContext
    from capsock.errors import ErrorCode, NetError

    context = InstanceContext(Policy.deny_all(), MemoryBackend(VirtualNetwork()),
                              limits=Limits(max_bytes_per_second_per_destination=10))
    peer = SocketAddress(ipaddress.ip_address("127.0.0.1"), 80)
    assert context.meter(peer, 25, blocking=False) == 10
    context.charge(peer, 6)  # the call moved 6 of the 10 it could
    assert context.meter(peer, 25, blocking=False) == 4
    context.charge(peer, 4)
    with pytest.raises(NetError) as caught:
        context.meter(peer, 5, blocking=False)
    assert caught.value.code is ErrorCode.WOULD_BLOCK
    other = SocketAddress(ipaddress.ip_address("127.0.0.2"), 80)
    assert context.meter(other, 5, blocking=False) == 5


def test_datagrams_are_charged_whole_then_wait_off_the_debt() -> None:
    from capsock.addresses import SocketAddress
    from capsock.backends.memory import MemoryBackend, VirtualNetwork
    from capsock.core.context import InstanceContext
    from capsock.errors import ErrorCode, NetError

    context = InstanceContext(Policy.deny_all(), MemoryBackend(VirtualNetwork()),
                              limits=Limits(max_bytes_per_second=100))
    peer = SocketAddress(ipaddress.ip_address("127.0.0.1"), 53)
    context.meter_datagram(peer, blocking=False)  # the bucket holds bytes: go
    context.charge(peer, 1000)  # one datagram larger than the bucket, charged whole
    with pytest.raises(NetError) as caught:
        context.meter_datagram(peer, blocking=False)
    assert caught.value.code is ErrorCode.WOULD_BLOCK


@pytest.mark.parametrize("field", ["max_connections_per_destination", "max_bytes_per_second",
                                   "max_bytes_per_second_per_destination"])
def test_quota_limits_are_validated(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="connections_per_rule"):
        Limits(connections_per_rule=(("tcp://x:1", 0),))


def test_audit_mode_config_is_a_policy_config() -> None:
    assert isinstance(parse_policy_text("", "empty.toml"), PolicyConfig)
    assert parse_policy_text("", "empty.toml").policy() == Policy.deny_all()


@pytest.mark.parametrize("guest_args", [["--max-connections", "1"], ["--bytes", "9"],
                                        ["--max-bytes", "2"], ["--policy", "x"]])
def test_guest_arguments_after_the_component_stay_the_guests(guest_args: list[str]) -> None:
    """argparse matches option prefixes: a guest's `--max-connections` must
    not be read as (or be ambiguous between) capsock's quota flags."""
    from capsock.cli import build_parser

    args = build_parser().parse_args(["run", "app.wasm", *guest_args])
    assert args.component == "app.wasm" and args.args == guest_args
    assert args.policy is None and args.limit_max_connections_per_destination is None


def test_the_readme_policy_file_and_transcripts_are_what_capsock_does(tmp_path: Path) -> None:
    """The operator's guide shows a complete file and what `check`,
    `explain` and a bad rule print: they must stay true."""
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    guide = readme.split("## Operator's guide: policy files", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```toml\n(.*?)```", guide, re.S)
    (tmp_path / "service.toml").write_text(blocks[0])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "host")}

    def capsock(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "capsock", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr

    transcript = guide.split("### check, explain", 1)[1].split("```", 2)[1]
    commands = re.split(r"^\$ ", transcript, flags=re.M)[1:]
    assert len(commands) == 3
    for block in commands:
        command, *expected = block.rstrip("\n").replace("\\\n      ", "").splitlines()
        args = command.split("#")[0].split()[1:]
        output = capsock(*args).splitlines()
        shown = [line for line in expected if line != "..."]
        if "..." in expected:
            assert shown[0] == output[0]
        else:
            assert output == shown, (command, output)
    bad = blocks[0].replace('"tcp://api.payments.example:443"',
                            '"tcp://api.payments.example:4430-443"')
    (tmp_path / "service.toml").write_text(bad)
    error = guide.split("before any guest runs:", 1)[1].split("```", 2)[1].splitlines()[-1]
    assert capsock("run", "--policy", "service.toml", "app.wasm").strip() == error
    config = parse_policy_text(blocks[0], "service.toml")
    assert config.policy().check(Use.TCP_CONNECT, _At("169.254.169.254", 80), {
        "api.payments.example": frozenset({ipaddress.ip_address("169.254.169.254")})}) \
        == (False, "deny-outbound tcp://private:*")


def test_the_same_rule_under_two_keys_is_located_under_each() -> None:
    text = ('[inbound]\nallow = ["tcp://*:80"]\n[outbound]\nallow = ["tcp://*:80"]\n'
            'deny = [\n  "tcp://*:80",\n]\n')
    config = parse_policy_text(text, "p.toml")
    assert config.rules["allow-inbound"][0].where == "p.toml:2 [inbound] allow"
    assert config.rules["allow-outbound"][0].where == "p.toml:4 [outbound] allow"
    assert config.rules["deny-outbound"][0].where == "p.toml:6 [outbound] deny"


# --- `->` mappings in a policy file (the same path as the flags) -----------

MAPPED = """
[resolve]
allow = ["db.internal->127.0.0.2"]
[outbound]
allow = ["tcp://db.internal->127.0.0.2:5432->15432", "tcp://127.0.0.1:80"]
[host]
virtual-range = "10.99.0.0/24"
"""


def test_a_files_arrow_rules_become_the_mapping_table_not_plain_rules() -> None:
    config = parse_policy_text(MAPPED, "svc.toml")
    table = config.mappings()
    assert table is not None
    # The mapping translates the guest side to the real side ...
    found = table.remote_to_guest("tcp", ipaddress.ip_address("127.0.0.2"), 15432)
    assert found is not None and found[2] == 5432
    # ... and the plain Policy holds only the rule without an arrow.
    policy = config.policy()
    assert policy.check(Use.TCP_CONNECT, _addr("127.0.0.1", 80), {}).allowed
    assert not policy.check(Use.TCP_CONNECT, _addr("127.0.0.2", 15432), {}).allowed


def test_without_arrow_rules_there_is_no_mapping_table() -> None:
    assert parse_policy_text('[outbound]\nallow = ["tcp://127.0.0.1:80"]\n', "f").mappings() \
        is None


def test_a_bad_virtual_range_in_a_file_is_refused() -> None:
    config = parse_policy_text(MAPPED.replace("10.99.0.0/24", "10.99.0.1/24"), "svc.toml")
    with pytest.raises(PolicyError, match="virtual-range"):
        config.mappings()


@pytest.mark.parametrize("section,key", [("outbound", "deny"), ("inbound", "deny"),
                                         ("resolve", "deny")])
def test_an_arrow_in_a_deny_rule_names_the_file_line(section: str, key: str) -> None:
    rule = "db.internal->127.0.0.2" if section == "resolve" else "tcp://a.test->127.0.0.2:1"
    text = f'[{section}]\n{key} = ["{rule}"]\n'
    with pytest.raises(PolicyError, match=r"f\.toml:2.*only allow-outbound"):
        parse_policy_text(text, "f.toml")


def _addr(ip: str, port: int) -> SocketAddress:
    return SocketAddress(ipaddress.ip_address(ip), port)
