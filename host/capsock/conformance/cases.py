"""The conformance cases: the one place that says what a host must do.

Each :class:`Case` names a probe of the conformance probe guest
(``probe/app.py``, next to this file), its arguments, and the outcome a
conforming host returns: ``"ok"``, an error-code name, or ``"value:..."``
(a ``re:`` prefix makes it a regular expression). Cases are grouped by
:class:`Setup`: the rules, pre-opens and peers the host side prepares
before one run of the guest.

Placeholders in rules and arguments are filled by the harness from the
peers it started for the run:

==================  ==========================================================
``{echo}``          a TCP echo server, ``127.0.0.1:PORT`` (``{echo_port}``)
``{echo6}``         the same on ``[::1]`` (``{echo6_port}``)
``{silent}``        a TCP server that accepts and never sends
``{closed}``        a TCP port nobody listens on (``{closed_port}``)
``{udp_echo}``      a UDP echo server (``{udp_port}``); ``{udp_echo6}`` on ::1
``{dns}``           a DNS server for ``ZONE`` (OS backend: real DNS)
``{tls_ok}``        a TLS echo server (certificate for localhost, svc.test,
                    127.0.0.1, from the CA a ``tls`` setup trusts; ALPN h2,
                    http/1.1); ``{tls_wrong}``, ``{tls_expired}``,
                    ``{tls_unknown}``, ``{tls_self}`` the same with a bad
                    certificate; ``{tls_truncate}`` sends ``partial`` and
                    closes without close_notify (`conformance.tls_peers`)
==================  ==========================================================

Core cases (ids ``socket.*``, ``tcp.*``, ``udp.*``, ``resolve.*``) check what
every host of the core implements and run on the core probe; the cases of
an extension interface (ids ``fast-io.*``, ``tls.*``) run on the probe built with it,
and only against a host that says it implements it.

To check another host of `capsock:net`, see docs/conformance.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..backends.options import SECOND, OptionKind, options_of

#: The names the harness's DNS server (or memory resolver) answers.
ZONE: dict[str, list[str]] = {
    "svc.test": ["127.0.0.1"],
    "v6.test": ["::1"],
    "dual.test": ["127.0.0.1", "::1"],
    "a.wild.test": ["127.0.0.1"],
    "deep.a.wild.test": ["127.0.0.1"],
    "wild.test": ["127.0.0.1"],
    "bad.wild.test": ["127.0.0.1"],
    "name.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
}


@dataclass(frozen=True)
class Setup:
    """What the host side prepares for one run of the guest."""

    name: str
    doc: str
    flags: dict[str, list[str]] = field(default_factory=dict)
    tcplisten: tuple[str, ...] = ()
    udpbind: tuple[str, ...] = ()
    peer_address: str = "real"
    dns: bool = False
    ipv6: bool = False  # needs IPv6 on loopback
    tls: bool = False  # the host trusts the test PKI's CA (and only it)
    #: --tls-listen pre-opens (the test PKI's good certificate; needs tls)
    tlslisten: tuple[str, ...] = ()


#: The extension interfaces the cases cover (the first part of their ids).
EXTENSIONS: tuple[str, ...] = ("fast-io", "tls")


@dataclass(frozen=True)
class Case:
    """One named contract check."""

    id: str
    setup: str
    kind: str
    args: tuple[object, ...]
    expect: str
    doc: str

    @property
    def extension(self) -> str | None:
        """The extension interface this case checks, or None for the core."""
        head = self.id.split(".", 1)[0]
        return head if head in EXTENSIONS else None


TCP_PEERS = ["tcp://127.0.0.1:{echo_port}", "tcp://127.0.0.1:{silent_port}",
             "tcp://127.0.0.1:{closed_port}"]

SETUPS: dict[str, Setup] = {s.name: s for s in [
    Setup("none", "no rules and no pre-opens: nothing is granted"),
    Setup("tcp", "TCP to the peers, binds on 127.0.0.1",
          {"allow-outbound": TCP_PEERS, "allow-inbound": ["tcp://127.0.0.1:*"]}),
    Setup("tcp-loop", "TCP anywhere on 127.0.0.1: the guest connects to its own listeners",
          {"allow-outbound": ["tcp://127.0.0.1:*"], "allow-inbound": ["tcp://127.0.0.1:*"]}),
    Setup("tcp6", "TCP over IPv6 loopback",
          {"allow-outbound": ["tcp://[::1]:{echo6_port}"], "allow-inbound": ["tcp://[::1]:*"]},
          ipv6=True),
    Setup("tcp-any-bind", "binds and listens anywhere", {"allow-inbound": ["tcp://*:*"]}),
    Setup("tcp-deny", "everything on 127.0.0.1 but the echo port",
          {"allow-outbound": ["tcp://127.0.0.1:*"],
           "deny-outbound": ["tcp://127.0.0.1:{echo_port}"],
           "allow-inbound": ["tcp://127.0.0.1:*"], "deny-inbound": ["tcp://127.0.0.1:1-1023"]}),
    Setup("tcp-v6-rules-only", "only IPv6 rules: mapped IPv4 must not slip through",
          {"allow-outbound": ["tcp://[::]/0:*"]}),
    Setup("tcp-cidr", "a CIDR rule", {"allow-outbound": ["tcp://127.0.0.0/30:{echo_port}"]}),
    Setup("addr-pool", "WAMR --addr-pool", {"addr-pool": ["127.0.0.1/32"]}),
    Setup("preopens", "a TCP and a UDP pre-open, not consumed",
          tcplisten=("127.0.0.1:0",), udpbind=("127.0.0.1:0",)),
    Setup("preopen-accept", "the guest connects to its own pre-opened listener",
          {"allow-outbound": ["tcp://127.0.0.1:*"]}, tcplisten=("127.0.0.1:0",)),
    Setup("preopen-peer", "accept reports the real peer",
          {"allow-outbound": ["tcp://127.0.0.1:*"]}, tcplisten=("127.0.0.1:0",)),
    Setup("preopen-hidden", "accept hides the peer",
          {"allow-outbound": ["tcp://127.0.0.1:*"]}, tcplisten=("127.0.0.1:0",),
          peer_address="hidden"),
    Setup("preopen-hidden6", "accept hides the IPv6 peer",
          {"allow-outbound": ["tcp://[::1]:*"]}, tcplisten=("[::1]:0",),
          peer_address="hidden", ipv6=True),
    Setup("preopen-udp", "a UDP pre-open used for sending",
          {"allow-outbound": ["udp://127.0.0.1:{udp_port}"]}, udpbind=("127.0.0.1:0",)),
    Setup("preopen-udp-as-tcp", "a UDP pre-open given to tcp-socket.from-socket",
          udpbind=("127.0.0.1:0",)),
    Setup("preopen-tcp-as-udp", "a TCP pre-open given to udp-socket.from-socket",
          tcplisten=("127.0.0.1:0",)),
    Setup("udp", "UDP to the echo peer, binds on 127.0.0.1",
          {"allow-outbound": ["udp://127.0.0.1:{udp_port}"],
           "allow-inbound": ["udp://127.0.0.1:*"]}),
    Setup("udp6", "UDP over IPv6 loopback",
          {"allow-outbound": ["udp://[::1]:{udp6_port}"], "allow-inbound": ["udp://[::1]:*"]},
          ipv6=True),
    Setup("udp-hidden", "UDP with hidden peers",
          {"allow-outbound": ["udp://127.0.0.1:{udp_port}"]}, peer_address="hidden"),
    Setup("tls", "TLS to the TLS peers by address (an address rule: any name, verified)",
          {"allow-outbound": ["tcp://127.0.0.1:*"]}, tls=True),
    Setup("tls-name", "TLS under a name rule: only svc.test, on its addresses",
          {"allow-outbound": ["tcp://svc.test:{tls_ok_port}"], "allow-resolve": ["other.test"]},
          dns=True, tls=True),
    Setup("tls-listen", "a host-terminated TLS listener the guest also connects to",
          {"allow-outbound": ["tcp://127.0.0.1:*"]}, tls=True, tlslisten=("127.0.0.1:0",)),
    Setup("mapping", "virtual addresses (-> rules): names, a real name on the right, UDP, "
          "an alias, an inbound port",
          {"allow-outbound": ["tcp://db.internal->127.0.0.1:5432->{echo_port}",
                              "tcp://named.internal->svc.test:{silent_port}",
                              "udp://dns.internal->127.0.0.1:53->{udp_port}"],
           "allow-resolve": ["alias.internal->127.0.0.1"],
           "allow-inbound": ["tcp://10.225.1.1->127.0.0.1:80->{closed_port}"]}, dns=True),
    Setup("mapping-range", "a range mounted as a range; a deny rule on one real address",
          {"allow-outbound": ["tcp://10.225.0.32/29->127.0.0.0/29:*"],
           "deny-outbound": ["tcp://127.0.0.1:{silent_port}"]}),
    Setup("groups", "network groups as rule hosts: loopback allowed, special denied on "
                    "the silent port, private and metadata denied",
          {"allow-outbound": ["tcp://loopback:*", "udp://loopback:{udp_port}"],
           "deny-outbound": ["tcp://special:{silent_port}", "tcp://private:*",
                             "tcp://metadata:*"],
           "allow-inbound": ["tcp://loopback:*"]}),
    Setup("resolve", "names through the DNS peer",
          {"allow-resolve": ["svc.test", "v6.test", "dual.test", "*.wild.test", "nx.test"],
           "deny-resolve": ["bad.wild.test"],
           "allow-outbound": ["tcp://name.test:{echo_port}"]}, dns=True),
]}

_CASES: list[Case] = []


def case(case_id: str, setup: str, kind: str, args: tuple[object, ...], expect: str,
         doc: str) -> None:
    _CASES.append(Case(case_id, setup, kind, args, expect, doc))


#: Per kind of option: a value to set, and what reading it back must return
#: (the host may round a buffer size; the rest come back as set).
_OPTION_SAMPLES: dict[OptionKind, tuple[object, str]] = {
    OptionKind.FLAG: (True, "value:True"),
    OptionKind.COUNT: (42, "value:42"),
    OptionKind.BYTES: (65536, r"re:value:[1-9]\d*"),
    OptionKind.DURATION: (30 * SECOND, f"value:{30 * SECOND}"),
}


def option_cases(protocol: str) -> None:
    """The option cases, from the option registry: every option of the
    protocol round-trips, and a value below its minimum is refused."""
    for option in options_of(protocol):
        name = option.name.replace("-", "_")
        value, expect = _OPTION_SAMPLES[option.kind]
        case(f"{protocol}.option.{option.name}", protocol, f"{protocol}-option", (name, value),
             expect, f"set-{option.name}, then {option.name} reads it back")
        if option.minimum > 0:
            case(f"{protocol}.option.{option.name}-below-minimum", protocol, f"{protocol}-option",
                 (name, option.minimum - 1), "invalid-argument",
                 f"{option.name} below {option.minimum} is refused")


# -- socket ---------------------------------------------------------------------
case("socket.preopens.none", "none", "preopen-taken-once", (), "value:0",
     "with no pre-opens the list is empty")
case("socket.preopens.tcp-protocol", "preopens", "preopen-protocol", ("tcp",), "value:tcp",
     "a --tcplisten pre-open says tcp")
case("socket.preopens.udp-protocol", "preopens", "preopen-protocol", ("udp",), "value:udp",
     "a --udpbind pre-open says udp")
case("socket.preopens.family", "preopens", "preopen-family", ("tcp",), "value:ipv4",
     "pre-open address family")
case("socket.preopens.name", "preopens", "preopen-name", ("tcp",),
     r"re:value:127\.0\.0\.1:\d+", "a pre-open is named by its bound address")
case("socket.preopens.taken-once", "preopens", "preopen-taken-once", (), "value:0",
     "each pre-open is handed out once")
case("socket.poll.empty", "tcp", "poll-empty", (), "invalid-argument",
     "poll needs at least one pollable")
case("socket.poll.same-twice", "tcp", "poll-same-twice", ("{echo}",), "value:[0, 1]",
     "one pollable twice in one call: both indexes")
case("socket.poll.timeout", "tcp", "poll-timeout", ("{silent}", 200), "value:[] waited>=200ms:True",
     "nothing ready: returns empty after the timeout")
case("socket.poll.readable", "tcp", "poll-readable-after-data", ("{echo}",), "value:[0]",
     "echoed data makes the socket readable")
case("socket.poll.writable", "tcp", "poll-writable", ("{echo}",), "value:[0]",
     "a connected socket is writable")
case("socket.poll.several", "tcp", "poll-several", ("{silent}",), "value:[1]",
     "only the ready one of two pollables is reported")
case("socket.poll.three", "tcp", "poll-three", ("{silent}",), "value:[1, 2]",
     "three borrowed pollables in one call: the ready ones, in order")
case("socket.pollable.not-ready", "tcp", "pollable-ready", ("{silent}",), "value:False",
     "ready() without data")
case("socket.pollable.socket-dropped", "tcp", "pollable-after-socket-drop", ("{silent}",),
     "value:True", "a pollable of a dropped socket reports ready")
case("socket.pollable.independent", "tcp", "pollable-independent", ("{silent}",),
     "value:[0]", "dropping one of two pollables of a socket leaves the other working")

# -- socket-tcp: capability and creation ------------------------------------------
case("tcp.network.none", "none", "tcp-network", (), "value:none",
     "no TCP rule: no TCP capability")
case("tcp.network.granted", "tcp", "tcp-network", (), "value:some", "a TCP rule grants it")
case("tcp.network.udp-only", "udp", "tcp-network", (), "value:none",
     "UDP rules grant no TCP")
case("tcp.create.ipv4", "tcp", "tcp-create", ("ipv4",), "value:ipv4", "create an IPv4 socket")
case("tcp.create.ipv6", "tcp6", "tcp-create", ("ipv6",), "value:ipv6", "create an IPv6 socket")

# -- socket-tcp: connect ------------------------------------------------------------
case("tcp.connect.allowed", "tcp", "tcp-connect", ("{echo}",), "ok", "allowed by an exact rule")
case("tcp.connect.other-port", "tcp", "tcp-connect", ("127.0.0.1:9",), "access-denied",
     "a port no rule names")
case("tcp.connect.other-address", "tcp", "tcp-connect", ("127.0.0.2:{echo_port}",),
     "access-denied", "an address no rule names")
case("tcp.connect.deny-wins", "tcp-deny", "tcp-connect", ("{echo}",), "access-denied",
     "a deny rule beats an allow rule")
case("tcp.connect.deny-leaves-others", "tcp-deny", "tcp-connect", ("{closed}",),
     "connection-refused", "the allow rule still covers other ports")
case("tcp.connect.refused", "tcp", "tcp-connect", ("{closed}",), "connection-refused",
     "nobody listens")
case("tcp.connect.port-zero", "tcp", "tcp-connect", ("127.0.0.1:0",), "invalid-argument",
     "port 0 is not a destination")
case("tcp.connect.unspecified", "tcp", "tcp-connect", ("0.0.0.0:80",), "invalid-argument",
     "the unspecified address is not a destination")
case("tcp.connect.multicast", "tcp", "tcp-connect", ("224.0.0.1:80",), "invalid-argument",
     "multicast is not a TCP destination")
case("tcp.connect.broadcast", "tcp", "tcp-connect", ("255.255.255.255:80",), "invalid-argument",
     "broadcast is not a TCP destination")
case("tcp.connect.family-mismatch", "tcp", "tcp-connect", ("{echo}", "ipv6"), "invalid-argument",
     "an IPv4 address on an IPv6 socket")
case("tcp.connect.twice", "tcp", "tcp-connect-twice", ("{echo}",), "invalid-state",
     "connect on a connected socket")
case("tcp.connect.listening", "tcp", "tcp-connect-listening", ("127.0.0.1:0", "{echo}"),
     "invalid-state", "connect on a listening socket")
case("tcp.connect.nonblocking", "tcp", "tcp-connect-nonblocking", ("{echo}",),
     "re:value:(would-block,ok|ok)", "non-blocking connect completes after writable")
case("tcp.connect.ipv6", "tcp6", "tcp-connect", ("{echo6}", "ipv6"), "ok", "IPv6 connect")
case("tcp.connect.mapped-ipv4", "tcp-v6-rules-only", "tcp-connect",
     ("[::ffff:127.0.0.1]:{echo_port}", "ipv6"), "access-denied",
     "an IPv4-mapped address is judged by IPv4 rules (none here)")
case("tcp.groups.loopback-allowed", "groups", "tcp-connect", ("{echo}",), "ok",
     "tcp://loopback:* allows 127.0.0.1")
case("tcp.groups.special-denied", "groups", "tcp-connect", ("{silent}",), "access-denied",
     "127.0.0.0/8 is in the special group: its deny rule wins over the loopback allow")
case("tcp.groups.mapped-denied", "groups", "tcp-connect",
     ("[::ffff:127.0.0.1]:{silent_port}", "ipv6"), "access-denied",
     "an IPv4-mapped member is a member (judged as IPv4)")
case("tcp.groups.bind-loopback", "groups", "tcp-bind", ("127.0.0.1:0",), "ok",
     "tcp://loopback:* as an inbound rule")
case("tcp.groups.bind-outside", "groups", "tcp-bind", ("0.0.0.0:0",), "access-denied",
     "0.0.0.0 is not in the loopback group")
case("udp.groups.loopback-echo", "groups", "udp-echo", ("{udp_echo}",),
     "value:datagram from-target:True", "udp://loopback:PORT allows the UDP peer")
case("tcp.connect.cidr-in", "tcp-cidr", "tcp-connect", ("{echo}",), "ok", "inside the CIDR rule")
case("tcp.connect.cidr-out", "tcp-cidr", "tcp-connect", ("127.0.0.9:{echo_port}",),
     "access-denied", "outside the CIDR rule")
case("tcp.connect.addr-pool-in", "addr-pool", "tcp-connect", ("{echo}",), "ok",
     "inside --addr-pool")
case("tcp.connect.addr-pool-out", "addr-pool", "tcp-connect", ("127.0.0.2:{echo_port}",),
     "access-denied", "outside --addr-pool")
case("tcp.connect.no-capability", "none", "tcp-connect", ("{echo}",), "value:no-network",
     "no capability, no socket")

# -- socket-tcp: bind, listen, accept -------------------------------------------------
case("tcp.bind.allowed", "tcp", "tcp-bind", ("127.0.0.1:0",), "ok", "allowed by an inbound rule")
case("tcp.bind.denied", "tcp", "tcp-bind", ("127.0.0.2:0",), "access-denied",
     "an address no inbound rule names")
case("tcp.bind.deny-wins", "tcp-deny", "tcp-bind", ("127.0.0.1:80",), "access-denied",
     "a deny-inbound rule beats an allow")
case("tcp.bind.twice", "tcp", "tcp-bind-twice", ("127.0.0.1:0",), "invalid-state",
     "bind on a bound socket")
case("tcp.bind.in-use", "tcp", "tcp-bind-in-use", ("127.0.0.1:0",), "address-in-use",
     "a port another socket listens on")
case("tcp.bind.not-local", "tcp-any-bind", "tcp-bind", ("192.0.2.1:0",),
     "address-not-bindable", "an address of no local interface")
case("tcp.bind.family-mismatch", "tcp", "tcp-bind", ("127.0.0.1:0", "ipv6"), "invalid-argument",
     "an IPv4 address on an IPv6 socket")
case("tcp.bind.ephemeral", "tcp", "tcp-bind-ephemeral", ("127.0.0.1:0",), "value:True",
     "port 0 picks a port")
case("tcp.bind.ipv6", "tcp6", "tcp-bind", ("[::1]:0", "ipv6"), "ok", "IPv6 bind")
case("tcp.listen.bound", "tcp", "tcp-listen", ("127.0.0.1:0",), "value:True",
     "bind then listen")
case("tcp.listen.implicit-bind", "tcp-any-bind", "tcp-listen", (), "value:True",
     "listen binds the unspecified address first")
case("tcp.listen.implicit-bind-denied", "tcp", "tcp-listen", (), "access-denied",
     "the implicit bind is checked like an explicit one")
case("tcp.listen.twice", "tcp", "tcp-listen-twice", ("127.0.0.1:0",), "invalid-state",
     "listen on a listening socket")
case("tcp.listen.connected", "tcp", "tcp-listen-connected", ("{echo}",), "invalid-state",
     "listen on a connected socket")
case("tcp.accept.fresh", "tcp", "tcp-accept-fresh", (), "invalid-state",
     "accept on an unbound socket")
case("tcp.accept.bound", "tcp", "tcp-accept-bound", ("127.0.0.1:0",), "invalid-state",
     "accept before listen")
case("tcp.accept.nonblocking", "tcp", "tcp-accept-nonblocking", ("127.0.0.1:0",),
     "would-block", "no pending connection")
case("tcp.accept.timeout", "tcp", "tcp-accept-timeout", ("127.0.0.1:0", 100), "timeout",
     "the socket's timeout passes")
case("tcp.accept.preopen", "preopen-accept", "tcp-accept-preopen-echo", (),
     "value:through the pre-open", "accept on a pre-opened listener, data flows")
case("tcp.accept.peer-real", "preopen-peer", "tcp-accept-preopen-peer", (), "value:real",
     "accept and remote-address report the real peer")
case("tcp.accept.peer-hidden", "preopen-hidden", "tcp-accept-preopen-peer", (),
     "value:192.0.0.8:0 192.0.0.8:0", "--peer-address=hidden: IPv4 stand-in")
case("tcp.accept.peer-hidden-ipv6", "preopen-hidden6", "tcp-accept-preopen-peer", (),
     "value:[100::]:0 [100::]:0", "--peer-address=hidden: IPv6 stand-in")

# -- socket-tcp: data ---------------------------------------------------------------------
case("tcp.receive.unconnected", "tcp", "tcp-receive-unconnected", (), "invalid-state",
     "receive before connect")
case("tcp.receive.end-of-stream", "tcp", "tcp-receive-eof", ("{echo}",), "value:bye|b''",
     "an empty receive means the peer closed")
case("tcp.receive.nonblocking", "tcp", "tcp-receive-nonblocking", ("{silent}",), "would-block",
     "no data on a non-blocking socket")
case("tcp.receive.timeout", "tcp", "tcp-receive-timeout", ("{silent}", 100), "timeout",
     "no data within the timeout")
case("tcp.receive.zero", "tcp", "tcp-receive-zero", ("{silent}",), "value:0",
     "max-len 0 returns no bytes")
case("tcp.peek.keeps-data", "tcp", "tcp-peek", ("{echo}",), "value:hello|hello",
     "peeked bytes are received again")
case("tcp.send.unconnected", "tcp", "tcp-send-unconnected", (), "invalid-state",
     "send before connect")
case("tcp.send.after-shutdown", "tcp", "tcp-send-after-shutdown", ("{echo}",), "invalid-state",
     "send after shutdown(send)")
case("tcp.send.echo-small", "tcp", "tcp-echo", ("{echo}", 100), "value:100 exact:True",
     "bytes come back unchanged")
case("tcp.send.echo-1mib", "tcp", "tcp-echo", ("{echo}", 1 << 20),
     "value:1048576 exact:True", "1 MiB comes back unchanged")
case("tcp.send.echo-ipv6", "tcp6", "tcp-echo", ("{echo6}", 1000, "ipv6"), "value:1000 exact:True",
     "IPv6 data path")
case("tcp.shutdown.unconnected", "tcp", "tcp-shutdown-unconnected", (), "invalid-state",
     "shutdown before connect")
case("tcp.shutdown.both", "tcp", "tcp-shutdown-both", ("{echo}",), "ok", "shutdown both ways")
case("tcp.local-address.unbound", "tcp", "tcp-local-address-unbound", (), "invalid-state",
     "no local address before bind")
case("tcp.local-address.bound", "tcp", "tcp-local-address-bound", ("127.0.0.1:0",),
     "value:False", "port 0 is replaced by the real port")
case("tcp.remote-address.unconnected", "tcp", "tcp-remote-address-unconnected", (),
     "invalid-state", "no peer before connect")
case("tcp.remote-address.connected", "tcp", "tcp-remote-address", ("{echo}",), "value:True",
     "the connected peer")
case("tcp.is-listening.fresh", "tcp", "tcp-is-listening-fresh", (), "value:False",
     "a fresh socket is not listening")

# -- socket-tcp: options and modes ---------------------------------------------------------
case("tcp.set-timeout.zero", "tcp", "tcp-set-timeout-zero", (), "invalid-argument",
     "a zero timeout is refused")
option_cases("tcp")
case("tcp.option.reuse-address-after-bind", "tcp", "tcp-reuse-after-bind", ("127.0.0.1:0",),
     "invalid-state", "SO_REUSEADDR only before bind")
case("tcp.from-socket.udp", "preopen-udp-as-tcp", "tcp-from-socket", ("udp",),
     "invalid-argument", "a UDP pre-open is not a TCP socket")

# -- socket-tcp: attenuation ----------------------------------------------------------
case("tcp.restrict.narrower", "tcp", "tcp-restrict-connect",
     (["allow-outbound=tcp://127.0.0.1:{closed_port}"], "{echo}"), "access-denied",
     "a narrowed handle denies what its rules do not allow")
case("tcp.restrict.still-allows", "tcp", "tcp-restrict-connect",
     (["allow-outbound=tcp://127.0.0.1:{echo_port}"], "{echo}"), "ok",
     "a narrowed handle allows what both allow")
case("tcp.restrict.cannot-widen", "tcp", "tcp-restrict-connect",
     (["allow-outbound=tcp://*:*"], "127.0.0.2:{echo_port}"), "access-denied",
     "restrict never widens")
case("tcp.restrict.invalid-rule", "tcp", "tcp-restrict-connect",
     (["allow-outbound=tcp://1.2.3:80"], "{echo}"), "invalid-argument", "a malformed rule")
case("tcp.restrict.udp-rule", "tcp", "tcp-restrict-connect",
     (["allow-outbound=udp://127.0.0.1:53"], "{echo}"), "invalid-argument",
     "a UDP rule on a TCP handle")

# -- socket-udp -----------------------------------------------------------------------
case("udp.network.none", "none", "udp-network", (), "value:none", "no UDP rule: no capability")
case("udp.network.granted", "udp", "udp-network", (), "value:some", "a UDP rule grants it")
case("udp.network.tcp-only", "tcp", "udp-network", (), "value:none", "TCP rules grant no UDP")
case("udp.create.ipv4", "udp", "udp-create", ("ipv4",), "value:ipv4", "create an IPv4 socket")
case("udp.create.ipv6", "udp6", "udp-create", ("ipv6",), "value:ipv6", "create an IPv6 socket")
case("udp.bind.allowed", "udp", "udp-bind", ("127.0.0.1:0",), "ok", "an inbound rule allows it")
case("udp.bind.denied", "udp", "udp-bind", ("127.0.0.2:0",), "access-denied",
     "no inbound rule names it")
case("udp.bind.twice", "udp", "udp-bind-twice", ("127.0.0.1:0",), "invalid-state",
     "bind on a bound socket")
case("udp.bind.in-use", "udp", "udp-bind-in-use", ("127.0.0.1:0",), "address-in-use",
     "a port another socket holds")
case("udp.bind.family-mismatch", "udp", "udp-bind", ("127.0.0.1:0", "ipv6"),
     "invalid-argument", "an IPv4 address on an IPv6 socket")
case("udp.send.echo", "udp", "udp-echo", ("{udp_echo}",), "value:datagram from-target:True",
     "a datagram goes out and the reply comes back with its sender")
case("udp.send.echo-ipv6", "udp6", "udp-echo", ("{udp_echo6}", "ipv6"),
     "value:datagram from-target:True", "IPv6 datagrams")
case("udp.send.denied", "udp", "udp-send", ("127.0.0.1:9",), "access-denied",
     "a destination no rule names")
case("udp.send.port-zero", "udp", "udp-send", ("127.0.0.1:0",), "invalid-argument",
     "port 0 is not a destination")
case("udp.send.no-destination", "udp", "udp-send-unconnected-no-address", (),
     "invalid-argument", "no address on an unconnected socket")
case("udp.send.too-large", "udp", "udp-send", ("{udp_echo}", 70000), "datagram-too-large",
     "larger than a datagram can be")
case("udp.connect.allowed", "udp", "udp-connect", ("{udp_echo}",), "ok", "connect to the peer")
case("udp.connect.denied", "udp", "udp-connect", ("127.0.0.1:9",), "access-denied",
     "connect to a peer no rule names")
case("udp.connect.echo", "udp", "udp-connected-echo", ("{udp_echo}",),
     "value:connected remote:True", "send without an address goes to the connected peer")
case("udp.disconnect.unconnected", "udp", "udp-disconnect-unconnected", (), "invalid-state",
     "disconnect without a peer")
case("udp.disconnect.forgets-peer", "udp", "udp-disconnect", ("{udp_echo}",), "invalid-state",
     "after disconnect there is no remote address")
case("udp.remote-address.unconnected", "udp", "udp-remote-unconnected", (), "invalid-state",
     "no peer before connect")
case("udp.local-address.unbound", "udp", "udp-local-unbound", (), "invalid-state",
     "no local address before bind")
case("udp.receive.unbound", "udp", "udp-receive-unbound", (), "invalid-state",
     "receive before bind")
case("udp.receive.nonblocking", "udp", "udp-receive-nonblocking", ("127.0.0.1:0",),
     "would-block", "nothing queued")
case("udp.receive.timeout", "udp", "udp-receive-timeout", ("127.0.0.1:0", 100), "timeout",
     "nothing within the timeout")
case("udp.peek.keeps-datagram", "udp", "udp-peek", ("{udp_echo}",), "value:peeked|peeked",
     "a peeked datagram is received again")
case("udp.receive.hidden-sender", "udp-hidden", "udp-hidden-sender", ("{udp_echo}",),
     "value:192.0.0.8:0", "--peer-address=hidden hides the sender")
option_cases("udp")
case("udp.from-socket.preopen", "preopen-udp", "udp-preopen-echo", ("{udp_echo}",),
     "value:from the pre-open", "a --udpbind pre-open sends and receives")
case("udp.from-socket.tcp", "preopen-tcp-as-udp", "udp-from-socket", ("tcp",),
     "invalid-argument", "a TCP pre-open is not a UDP socket")
case("udp.restrict.narrower", "udp", "udp-restrict-send",
     (["allow-outbound=udp://127.0.0.1:9"], "{udp_echo}"), "access-denied",
     "a narrowed UDP handle")
case("udp.restrict.tcp-rule", "udp", "udp-restrict-send",
     (["allow-outbound=tcp://127.0.0.1:9"], "{udp_echo}"), "invalid-argument",
     "a TCP rule on a UDP handle")

# -- ip-resolve-address (order matters in the "resolve" setup: the name-rule
# cases that expect a denial run before name.test is resolved) -----------------
case("resolve.resolver.none", "none", "resolver", (), "value:none",
     "no resolve rule: no resolver")
case("resolve.resolver.granted", "resolve", "resolver", (), "value:some",
     "--allow-resolve grants a resolver")
case("resolve.allowed", "resolve", "resolve", ("svc.test",), "value:127.0.0.1",
     "an allowed name")
case("resolve.ipv6", "resolve", "resolve", ("v6.test",), "value:::1", "AAAA records")
case("resolve.both-families", "resolve", "resolve", ("dual.test",), "value:127.0.0.1,::1",
     "A and AAAA together")
case("resolve.family-filter", "resolve", "resolve", ("dual.test", "ipv4"), "value:127.0.0.1",
     "only the requested family")
case("resolve.family-missing", "resolve", "resolve", ("v6.test", "ipv4"), "name-unresolvable",
     "no address of the requested family")
case("resolve.denied", "resolve", "resolve", ("other.test",), "access-denied",
     "a name no rule allows")
case("resolve.wildcard", "resolve", "resolve", ("a.wild.test",), "value:127.0.0.1",
     "*.wild.test matches a subdomain")
case("resolve.wildcard-depth", "resolve", "resolve", ("deep.a.wild.test",), "value:127.0.0.1",
     "at any depth")
case("resolve.wildcard-not-bare", "resolve", "resolve", ("wild.test",), "access-denied",
     "but not the bare domain")
case("resolve.deny-wins", "resolve", "resolve", ("bad.wild.test",), "access-denied",
     "deny-resolve beats the wildcard")
case("resolve.case-insensitive", "resolve", "resolve", ("SVC.Test",), "value:127.0.0.1",
     "names compare case-insensitively")
case("resolve.trailing-dot", "resolve", "resolve", ("svc.test.",), "value:127.0.0.1",
     "a trailing dot is the same name")
case("resolve.nxdomain", "resolve", "resolve", ("nx.test",), "name-unresolvable",
     "allowed but nonexistent")
case("resolve.ip-literal", "resolve", "resolve", ("127.0.0.1",), "invalid-argument",
     "an IP literal is not a name")
case("resolve.empty", "resolve", "resolve", ("",), "invalid-argument", "an empty name")
case("resolve.too-long", "resolve", "resolve", (".".join(["x" * 60] * 5) + ".test",),
     "invalid-argument", "longer than 253 bytes")
case("resolve.control-characters", "resolve", "resolve", ("svc\n.test",), "invalid-argument",
     "control characters")
case("resolve.restrict.narrower", "resolve", "resolve-restricted",
     (["allow-resolve=v6.test"], "svc.test"), "access-denied", "a narrowed resolver")
case("resolve.restrict.cannot-widen", "resolve", "resolve-restricted",
     (["allow-resolve=*"], "other.test"), "access-denied", "restrict never widens")
case("resolve.restrict.invalid-rule", "resolve", "resolve-restricted",
     (["allow-outbound=tcp://x:1"], "svc.test"), "invalid-argument", "not a resolve rule")
case("resolve.name-rule.other-name", "resolve", "resolve-connect", ("svc.test", "{echo_port}"),
     "access-denied", "the same IP obtained through another name is still denied")
case("resolve.name-rule.unresolved", "resolve", "tcp-connect", ("{echo}",), "access-denied",
     "an IP used without resolving the name is denied the IP used without resolving")
case("resolve.name-rule.implies-resolve", "resolve", "resolve", ("name.test",),
     "value:127.0.0.1", "tcp://name.test:PORT implies resolving name.test")
case("resolve.name-rule.connect", "resolve", "resolve-connect", ("name.test", "{echo_port}"),
     "ok", "an address obtained by resolving the rule's name may be connected to")

# == the fast-io extension: run only against a host that implements it ==========

# -- fast-io: the TCP latin-1 lane (tcp-receive-latin1 / tcp-send-latin1) ----------
case("fast-io.tcp.latin1.to-peer", "tcp", "tcp-latin1-echo", ("{echo}", "latin1", "list", 65536),
     "value:65536 exact:True",
     "send-latin1 delivers every byte value exactly (read back as list<u8>)")
case("fast-io.tcp.latin1.from-peer", "tcp", "tcp-latin1-echo", ("{echo}", "list", "latin1", 65536),
     "value:65536 exact:True",
     "receive-latin1 returns every byte value exactly (sent as list<u8>)")
case("fast-io.tcp.latin1.round-trip", "tcp", "tcp-latin1-echo",
     ("{echo}", "latin1", "latin1", 1 << 20),
     "value:1048576 exact:True", "1 MiB of every byte value through the lane both ways")
case("fast-io.tcp.latin1.send-above-255", "tcp", "tcp-latin1-send-invalid", ("{echo}", 0x100),
     "value:invalid-argument|b'END'",
     "a code point above 255 is invalid-argument and nothing, not even the prefix, is sent")
case("fast-io.tcp.latin1.send-astral", "tcp", "tcp-latin1-send-invalid", ("{echo}", 0x1F600),
     "value:invalid-argument|b'END'", "so is a code point beyond the BMP")
case("fast-io.tcp.latin1.end-of-stream", "tcp", "tcp-latin1-eof", ("{echo}",), "value:bye|''",
     "an empty string means the peer closed")
case("fast-io.tcp.latin1.receive-zero", "tcp", "tcp-latin1-receive-zero", ("{silent}",), "value:''",
     "max-len 0 returns an empty string")
case("fast-io.tcp.latin1.receive-nonblocking", "tcp", "tcp-latin1-receive-nonblocking",
     ("{silent}",),
     "would-block", "no data on a non-blocking socket")
case("fast-io.tcp.latin1.receive-unconnected", "tcp", "tcp-latin1-receive-unconnected", (),
     "invalid-state", "receive-latin1 before connect")
case("fast-io.tcp.latin1.send-unconnected", "tcp", "tcp-latin1-send-unconnected",
     (), "invalid-state",
     "send-latin1 before connect")
case("fast-io.tcp.latin1.send-after-shutdown", "tcp", "tcp-latin1-send-after-shutdown", ("{echo}",),
     "invalid-state", "send-latin1 after shutdown(send)")

# -- fast-io: the TCP hex lane (tcp-receive-hex / tcp-send-hex) ----------------------
case("fast-io.tcp.hex.to-peer", "tcp", "tcp-latin1-echo", ("{echo}", "hex", "list", 65536),
     "value:65536 exact:True",
     "send-hex delivers every byte value exactly (read back as list<u8>)")
case("fast-io.tcp.hex.from-peer", "tcp", "tcp-latin1-echo", ("{echo}", "list", "hex", 65536),
     "value:65536 exact:True",
     "receive-hex returns every byte value exactly (sent as list<u8>)")
case("fast-io.tcp.hex.round-trip", "tcp", "tcp-latin1-echo", ("{echo}", "hex", "latin1", 1 << 20),
     "value:1048576 exact:True", "1 MiB out through the hex lane, back through latin-1")
case("fast-io.tcp.hex.receive-shape", "tcp", "tcp-hex-receive-shape", ("{echo}",),
     "value:abcd|01ff|''", "lowercase digits, max-len counts bytes, '' at end of stream")
case("fast-io.tcp.hex.send-odd", "tcp", "tcp-hex-send-invalid", ("{echo}", "6"),
     "value:invalid-argument|b'END'", "an odd number of digits: nothing is sent")
case("fast-io.tcp.hex.send-not-hex", "tcp", "tcp-hex-send-invalid", ("{echo}", "zz"),
     "value:invalid-argument|b'END'", "a non-digit: nothing, not even the prefix, is sent")
case("fast-io.tcp.hex.send-whitespace", "tcp", "tcp-hex-send-invalid", ("{echo}", " 61"),
     "value:invalid-argument|b'END'", "whitespace is not a digit")

# -- fast-io: splice (the guest's own connections: setup tcp-loop) -------------------
case("fast-io.splice.echo", "tcp-loop", "tcp-splice-echo", (1 << 20,),
     "value:moved:1048576 exact:True", "splice to itself echoes 1 MiB of every byte value")
case("fast-io.splice.proxy", "tcp-loop", "tcp-splice-proxy", ("{echo}", 1 << 20),
     "value:moved:1048576/1048576 exact:True",
     "splice to another connected socket, both ways through the echo peer: a proxy")
case("fast-io.splice.end-of-stream", "tcp-loop", "tcp-splice-eof", (), "value:3,0,abc",
     "blocking: moves the bytes before end of stream, then returns 0")
case("fast-io.splice.max-len", "tcp-loop", "tcp-splice-max-len", (),
     "value:100 echoed:True kept:True", "at most max-len bytes move; the rest stays queued")
case("fast-io.splice.target-unconnected", "tcp-loop", "tcp-splice-bad-target", ("unconnected",),
     "value:invalid-state|keep", "a target that is not connected")
case("fast-io.splice.target-listening", "tcp-loop", "tcp-splice-bad-target", ("listening",),
     "value:invalid-state|keep", "a listening target")
case("fast-io.splice.target-shut-down", "tcp-loop", "tcp-splice-bad-target", ("shut-down",),
     "value:invalid-state|keep", "a target after shutdown(send)")
case("fast-io.splice.self-shut-down", "tcp-loop", "tcp-splice-bad-target", ("self-shut-down",),
     "value:invalid-state|keep", "splice to itself after its own shutdown(send)")
case("fast-io.splice.source-unconnected", "tcp-loop", "tcp-splice-bad-source", ("fresh",),
     "invalid-state", "a source that is not connected")
case("fast-io.splice.source-listening", "tcp-loop", "tcp-splice-bad-source", ("listening",),
     "invalid-state", "a listening source")
case("fast-io.splice.nonblocking", "tcp-loop", "tcp-splice-nonblocking", (), "would-block",
     "non-blocking with nothing queued")
case("fast-io.splice.timeout", "tcp-loop", "tcp-splice-timeout", (100,), "timeout",
     "blocking with a timeout and nothing queued")
case("fast-io.splice.target-full", "tcp-loop", "tcp-splice-target-full",
     (1 << 20, "nonblocking", "nonblocking"),
     "value:stalled:True partial:True again:would-block exact:True extra:0 waited:False",
     "a full target: partial counts, then would-block; after the peer reads, all arrives once")
case("fast-io.splice.target-full-blocking-target", "tcp-loop", "tcp-splice-target-full",
     (1 << 20, "blocking", "nonblocking"),
     "value:stalled:True partial:True again:would-block exact:True extra:0 waited:False",
     "the source's mode decides: a non-blocking splice never waits for a blocking target")
case("fast-io.splice.target-full-timeout", "tcp-loop", "tcp-splice-target-full",
     (1 << 20, "nonblocking", "timeout"),
     "value:stalled:True partial:True again:timeout exact:True extra:0 waited:False",
     "blocking with a timeout into a full target: timeout, and no byte lost or repeated")

# -- fast-io: the UDP lanes -----------------------------------------------------------
case("fast-io.udp.latin1.to-peer", "udp", "udp-latin1-echo", ("{udp_echo}", "latin1", "list"),
     "value:1024 exact:True from-target:True",
     "send-latin1: a datagram of every byte value, exact (read back as list<u8>)")
case("fast-io.udp.latin1.from-peer", "udp", "udp-latin1-echo", ("{udp_echo}", "list", "latin1"),
     "value:1024 exact:True from-target:True",
     "receive-latin1: every byte value, exact, with its sender (sent as list<u8>)")
case("fast-io.udp.latin1.round-trip", "udp", "udp-latin1-echo",
     ("{udp_echo}", "latin1", "latin1", 60000),
     "value:60000 exact:True from-target:True", "a 60000-byte datagram through the lane both ways")
case("fast-io.udp.latin1.send-denied", "udp", "udp-latin1-send", ("127.0.0.1:9",), "access-denied",
     "send-latin1 is checked by the policy like send")
case("fast-io.udp.latin1.send-above-255", "udp", "udp-latin1-send-invalid", ("{udp_echo}", 0x100),
     "value:invalid-argument|END", "a code point above 255: invalid-argument, nothing sent")
case("fast-io.udp.latin1.connected", "udp", "udp-latin1-connected",
     ("{udp_echo}",), "value:exact:True",
     "send-latin1 without an address goes to the connected peer")
case("fast-io.udp.latin1.truncated", "udp", "udp-latin1-truncated", ("{udp_echo}", 10),
     "value:10 prefix:True", "receive-latin1 returns at most max-len bytes of the datagram")
case("fast-io.udp.latin1.receive-unbound", "udp", "udp-latin1-receive-unbound", (), "invalid-state",
     "receive-latin1 before bind")
case("fast-io.udp.hex.to-peer", "udp", "udp-latin1-echo", ("{udp_echo}", "hex", "list"),
     "value:1024 exact:True from-target:True",
     "udp-send-hex: a datagram of every byte value, exact (read back as list<u8>)")
case("fast-io.udp.hex.from-peer", "udp", "udp-latin1-echo", ("{udp_echo}", "list", "hex"),
     "value:1024 exact:True from-target:True",
     "udp-receive-hex: every byte value, exact, with its sender (sent as list<u8>)")
case("fast-io.udp.hex.round-trip", "udp", "udp-latin1-echo", ("{udp_echo}", "hex", "latin1", 60000),
     "value:60000 exact:True from-target:True", "60000 bytes out through hex, back through latin-1")
case("fast-io.udp.hex.send-odd", "udp", "udp-hex-send-invalid", ("{udp_echo}", "6"),
     "value:invalid-argument|END", "an odd number of digits: invalid-argument, nothing sent")
case("fast-io.udp.hex.send-not-hex", "udp", "udp-hex-send-invalid", ("{udp_echo}", "zz"),
     "value:invalid-argument|END", "a non-digit: invalid-argument, nothing sent")


# == the tls extension: run only against a host that implements it ===============
# Outcomes of the tls kinds are values: "value:ok", "value:<error-code>",
# "value:verify:<verify-reason>", "value:handshake-failed".

# -- tls: handshakes ----------------------------------------------------------------
case("tls.handshake.ok", "tls", "tls-handshake", ("{tls_ok}", "localhost", []),
     "value:ok TLSv1.3 -", "a certificate for the name, from a trusted CA; no ALPN offered")
case("tls.handshake.alpn", "tls", "tls-handshake", ("{tls_ok}", "svc.test", ["h2", "http/1.1"]),
     "value:ok TLSv1.3 h2", "ALPN: the server's choice is visible")
case("tls.handshake.ip-literal", "tls", "tls-handshake", ("{tls_ok}", "127.0.0.1", []),
     "value:ok TLSv1.3 -", "an IP literal is verified against the certificate's IP addresses")
case("tls.handshake.bad-alpn", "tls", "tls-handshake", ("{tls_ok}", "localhost", [""]),
     "value:invalid-argument", "an empty ALPN protocol name")
case("tls.handshake.bad-name", "tls", "tls-handshake", ("{tls_ok}", "no spaces.test", []),
     "value:invalid-argument", "a server name that is not a domain name")
case("tls.handshake.unconnected", "tls", "tls-handshake-unconnected", (),
     "value:invalid-state", "a socket that is not connected")
case("tls.handshake.twice", "tls", "tls-handshake-twice", ("{tls_ok}", "localhost"),
     "value:ok invalid-state", "TLS on a socket that has it already")
case("tls.handshake.nonblocking", "tls", "tls-handshake-nonblocking",
     ("{tls_ok}", "localhost", 200), "re:value:(would-block,)*ok",
     "non-blocking: would-block until the server's answer is there (poll readable), then ok")
case("tls.handshake.nonblocking-waits", "tls", "tls-handshake-nonblocking",
     ("{silent}", "localhost", 1), "value:would-block",
     "non-blocking, a server that never answers: would-block, nothing else")

# -- tls: verification failures ------------------------------------------------------
case("tls.verify.wrong-name", "tls", "tls-handshake", ("{tls_wrong}", "localhost", []),
     "value:verify:hostname-mismatch", "a certificate for another name")
case("tls.verify.name-not-in-certificate", "tls", "tls-handshake",
     ("{tls_ok}", "other.test", []), "value:verify:hostname-mismatch",
     "an address rule allows any name, but the name must verify")
case("tls.verify.expired", "tls", "tls-handshake", ("{tls_expired}", "localhost", []),
     "value:verify:expired", "an expired certificate")
case("tls.verify.unknown-ca", "tls", "tls-handshake", ("{tls_unknown}", "localhost", []),
     "value:verify:unknown-ca", "a certificate from a CA the host does not trust")
case("tls.verify.self-signed", "tls", "tls-handshake", ("{tls_self}", "localhost", []),
     "value:verify:self-signed", "a self-signed certificate")
case("tls.verify.unusable-after", "tls", "tls-verify-then-send", ("{tls_wrong}", "localhost"),
     "value:invalid-state", "after a failed handshake the connection is unusable")

# -- tls: the server-name policy ------------------------------------------------------
case("tls.policy.name-rule", "tls-name", "tls-resolve-handshake",
     ("svc.test", "{tls_ok_port}", "svc.test"), "value:ok", "the name rule's own name")
case("tls.policy.other-name", "tls-name", "tls-resolve-handshake",
     ("svc.test", "{tls_ok_port}", "other.test"), "value:access-denied",
     "another name on the name rule's connection, even one the guest may resolve")
case("tls.policy.ip-literal", "tls-name", "tls-resolve-handshake",
     ("svc.test", "{tls_ok_port}", "127.0.0.1"), "value:access-denied",
     "an IP literal under a name rule")

# -- tls: data and the end of the stream ------------------------------------------------
case("tls.data.echo", "tls", "tls-echo", ("{tls_ok}", "localhost", 100000),
     "value:100000", "plaintext through the host's TLS, both ways")
case("tls.session.details", "tls", "tls-session", ("{tls_ok}", "svc.test"),
     "value:svc.test TLSv1.3 DNS:svc.test", "server name, version, the certificate's SANs")
case("tls.session.plain", "tls", "tls-session-plain", ("{tls_ok}",), "value:invalid-state",
     "no TLS on the socket")
case("tls.host-terminated.plain", "tls", "tls-host-terminated", ("{tls_ok}",), "value:False",
     "a connection the guest made is not host-terminated")
case("tls.close-notify", "tls", "tls-close-notify", ("{tls_ok}", "localhost"),
     "value:ok ''", "close_notify both ways, then plaintext: the server's end of stream")
case("tls.host-terminated.loop", "tls-listen", "tls-host-terminated-loop", (),
     "value:True True hello back localhost http/1.1 no-client-certificate",
     "a --tls-listen connection, both ends non-blocking in one guest: the host handshakes "
     "the accepted end as the guest reads it; plaintext both ways; SNI and ALPN visible")
case("tls.truncated", "tls", "tls-truncated", ("{tls_truncate}", "localhost"),
     "value:partial connection-aborted ''",
     "EOF without close_notify: connection-aborted once, then end of stream")
# -- virtual addresses (`->` rules) ------------------------------------------------
# In "mapping", names mapped to a real name get addresses from the default
# virtual range (10.225.0.0/16) in rule order: db.internal 10.225.0.1,
# named.internal .2, dns.internal .3. The guest never sees a real address.
# Two mappings may not share a real address and port, hence two setups.
case("resolve.map.virtual", "mapping", "resolve", ("db.internal",), "value:10.225.0.1",
     "a name mapped to a real target resolves to a guest-side address, no query")
case("resolve.map.alias", "mapping", "resolve", ("alias.internal",), "value:127.0.0.1",
     "NAME->ADDRESS: the name resolves to the address given")
case("tcp.map.by-name", "mapping", "tcp-echo", ("10.225.0.1:5432", 40000),
     "value:40000 exact:True", "a connection to the guest-side address and port reaches "
     "the real target (another port), bytes intact")
case("tcp.map.remote-address", "mapping", "tcp-remote-address", ("10.225.0.1:5432",),
     "value:True", "remote-address is the guest-side address, not the real one")
case("tcp.map.local-address", "mapping", "tcp-local-host", ("10.225.0.1:5432",),
     "value:0.0.0.0", "a socket bound by the host for a connect through a mapping shows the "
     "unspecified address (its real source address would reveal the real network)")
case("tcp.map.range", "mapping-range", "tcp-remote-address", ("10.225.0.33:{echo_port}",),
     "value:True", "a mounted range: 10.225.0.33 is 127.0.0.1 (offsets kept)")
case("tcp.map.real-name", "mapping", "tcp-remote-address", ("10.225.0.2:{silent_port}",),
     "value:True", "a real name on the right is resolved by the host when the guest connects")
case("tcp.map.deny-real", "mapping-range", "tcp-connect", ("10.225.0.33:{silent_port}",),
     "access-denied", "a deny rule on the real address wins over the mapping")
case("tcp.map.real-not-granted", "mapping", "tcp-connect", ("{echo}",), "access-denied",
     "a mapping grants its guest side only: the real target by its own address is denied")
case("tcp.map.unmapped-port", "mapping", "tcp-connect", ("10.225.0.1:5433",),
     "access-denied", "only the mapped port of a mapped name is granted")
case("tcp.map.bind-inbound", "mapping", "tcp-local-address-bound", ("10.225.1.1:80",),
     "value:True", "inbound: the guest binds its address and port, local-address says so "
                   "(the host bound the real ones)")
case("udp.map.sender", "mapping", "udp-echo", ("10.225.0.3:53",),
     "value:datagram from-target:True", "a datagram from the real peer shows its guest-side "
                                        "sender")

CASES: tuple[Case, ...] = tuple(_CASES)


def check_table() -> None:
    """Every case names a known setup and the ids are unique."""
    ids = [c.id for c in CASES]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ValueError(f"duplicate case ids: {sorted(duplicates)}")
    unknown = {c.setup for c in CASES} - set(SETUPS)
    if unknown:
        raise ValueError(f"cases name unknown setups: {sorted(unknown)}")


check_table()

