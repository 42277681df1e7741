"""The wasi:sockets conformance cases: what a host of `wasi:sockets@0.2`
must do, function by function, and what capsock's policy adds (denials).

Each :class:`WasiCase` names a probe kind of ``probe/app.py`` (next to this
file), its arguments and the outcome the 0.2 documentation (and, for
denials, capsock's rules) asks for: ``"ok"``, an ``error-code`` name,
``"stream:closed"``, or ``"value:..."`` (``re:`` makes it a regular
expression). Placeholders (``{echo}``, ``{closed_port}``, ...: see
`capsock.conformance.cases`, plus ``{control}``, the UDP peer that sends
from a second port, and ``{witness}``/``{udp_witness}``, which must see
nothing) are filled by the harness in arguments and
expectations alike.

A :class:`WasiSetup` is one run of the probe: capsock's rules for it, and
what those rules amount to per capability (`grants`: ``all``, ``none`` or
``some`` of what its cases do with TCP, UDP and name lookup). A host whose
switches are all-or-nothing (the wasmtime CLI's ``-S``, jco's none at all)
can run a setup only when every grant is ``all`` or ``none`` as its
switches allow; the table says "cannot express" otherwise. The rules stay
capsock's: another host is told only the grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cases import Case

__all__ = ["WASI_CASES", "WASI_SETUPS", "WasiCase", "WasiSetup"]

#: The capabilities a grant names.
CAPABILITIES = ("tcp", "udp", "lookup")


@dataclass(frozen=True)
class WasiSetup:
    """What the host side prepares for one run of the probe."""

    name: str
    doc: str
    flags: dict[str, list[str]] = field(default_factory=dict)
    #: per capability: "all", "none" or "some" of what this setup's cases do
    grants: dict[str, str] = field(default_factory=dict)
    #: the cases resolve names only the harness's DNS peer knows
    own_dns: bool = False
    ipv6: bool = False
    #: capsock's --peer-address: "real", or "hidden" (stand-ins for peers)
    peer_address: str = "real"


#: One named check of one function or one policy decision: the same record
#: as capsock:net's cases (id, setup, probe kind, args, expected, doc).
WasiCase = Case


LOOPBACK_TCP = ["tcp://127.0.0.1:*", "tcp://[::1]:*"]
LOOPBACK_UDP = ["udp://127.0.0.1:*", "udp://[::1]:*"]
ALL = {"tcp": "all", "udp": "all", "lookup": "all"}

WASI_SETUPS: dict[str, WasiSetup] = {s.name: s for s in [
    WasiSetup("all", "TCP and UDP anywhere on loopback (and 192.0.2.1 for binds), any name",
              {"allow-outbound": LOOPBACK_TCP + LOOPBACK_UDP,
               "allow-inbound": LOOPBACK_TCP + LOOPBACK_UDP
               + ["tcp://192.0.2.1:*", "udp://192.0.2.1:*"],
               "allow-resolve": ["*"]}, ALL),
    WasiSetup("all6", "the same over IPv6 loopback",
              {"allow-outbound": LOOPBACK_TCP + LOOPBACK_UDP,
               "allow-inbound": LOOPBACK_TCP + LOOPBACK_UDP}, ALL, ipv6=True),
    WasiSetup("none", "no rules: nothing is granted",
              {}, {"tcp": "none", "udp": "none", "lookup": "none"}),
    WasiSetup("tcp-selective", "TCP to the echo port only; binds on 127.0.0.1 only",
              {"allow-outbound": ["tcp://127.0.0.1:{echo_port}"],
               "allow-inbound": ["tcp://127.0.0.1:*"]}, {"tcp": "some"}),
    WasiSetup("tcp-deny", "all of loopback but a deny rule on the echo port",
              {"allow-outbound": ["tcp://127.0.0.1:*"],
               "deny-outbound": ["tcp://127.0.0.1:{echo_port}"],
               "allow-inbound": ["tcp://127.0.0.1:*"]}, {"tcp": "some"}),
    WasiSetup("tcp-inbound-only", "binds and listens, no outbound rule",
              {"allow-inbound": ["tcp://127.0.0.1:*"]}, {"tcp": "some"}),
    WasiSetup("udp-selective", "UDP to the echo and control peers only, no inbound rule: "
              "the guest binds 0.0.0.0:0, wasi's implicit bind (what wasi-libc does before "
              "a sendto on an unbound socket), which capsock:net allows without a rule",
              {"allow-outbound": ["udp://127.0.0.1:{udp_port}", "udp://{control}"]},
              {"udp": "some"}),
    WasiSetup("hidden", "loopback allowed, peers hidden (--peer-address=hidden)",
              {"allow-outbound": LOOPBACK_TCP + LOOPBACK_UDP,
               "allow-inbound": LOOPBACK_TCP + LOOPBACK_UDP},
              {"tcp": "all", "udp": "all"}, peer_address="hidden"),
    WasiSetup("hidden6", "the same over IPv6 loopback",
              {"allow-outbound": LOOPBACK_TCP, "allow-inbound": LOOPBACK_TCP},
              {"tcp": "all"}, peer_address="hidden", ipv6=True),
    WasiSetup("names", "names through the harness's DNS peer; some allowed",
              {"allow-resolve": ["svc.test", "dual.test", "nx.test"],
               "allow-outbound": ["tcp://name.test:{echo_port}"]},
              {"lookup": "some", "tcp": "some"}, own_dns=True),
]}

WASI_CASES: list[WasiCase] = []


def case(case_id: str, setup: str, kind: str, args: tuple[object, ...], expect: str,
         doc: str) -> None:
    WASI_CASES.append(WasiCase(case_id, setup, kind, args, expect, doc))


PORT = r"[1-9]\d*"

# -- network, instance-network, create-socket ------------------------------------------
case("network.instance-network", "all", "instance-network", (), "ok",
     "instance-network returns the network handle")
case("network.instance-network.none", "none", "instance-network", (), "ok",
     "the handle itself grants nothing, so it is handed out under no rule too")
case("tcp-create-socket.ipv4", "all", "tcp-create", ("ipv4",), "ok", "an IPv4 TCP socket")
case("tcp-create-socket.ipv6", "all", "tcp-create", ("ipv6",), "ok", "an IPv6 TCP socket")
case("tcp-create-socket.many", "all", "create-many", ("tcp", 20), "value:20",
     "twenty sockets at once, all dropped")
case("udp-create-socket.ipv4", "all", "udp-create", ("ipv4",), "ok", "an IPv4 UDP socket")
case("udp-create-socket.ipv6", "all", "udp-create", ("ipv6",), "ok", "an IPv6 UDP socket")

# -- tcp: bind -----------------------------------------------------------------------------
case("tcp.bind.ephemeral", "all", "tcp-bind", ("127.0.0.1:0",), f"re:value:127\\.0\\.0\\.1:{PORT}",
     "start-bind + finish-bind on port 0: local-address has the port picked")
case("tcp.bind.ipv6", "all6", "tcp-bind", ("[::1]:0", "ipv6"), f"re:value:\\[::1\\]:{PORT}",
     "bind an IPv6 socket on ::1")
case("tcp.bind.finish-not-started", "all", "tcp-finish-bind-only", (), "not-in-progress",
     "finish-bind without start-bind")
case("tcp.bind.finish-twice", "all", "tcp-finish-bind-twice", ("127.0.0.1:0",),
     "not-in-progress", "a second finish-bind after a finished bind")
case("tcp.bind.twice", "all", "tcp-bind-twice", ("127.0.0.1:0", "127.0.0.1:0"),
     "invalid-state", "start-bind on a bound socket")
case("tcp.bind.start-twice", "all", "tcp-start-bind-twice", ("127.0.0.1:0",),
     "re:invalid-state|concurrency-conflict", "start-bind while a bind is in progress")
case("tcp.bind.family-mismatch-v4-on-v6", "all", "tcp-bind", ("127.0.0.1:0", "ipv6"),
     "invalid-argument", "an IPv4 address on an IPv6 socket")
case("tcp.bind.family-mismatch-v6-on-v4", "all", "tcp-bind", ("[::1]:0", "ipv4"),
     "invalid-argument", "an IPv6 address on an IPv4 socket")
case("tcp.bind.mapped-ipv4", "all", "tcp-bind", ("[::ffff:127.0.0.1]:0", "ipv6"),
     "invalid-argument", "an IPv4-mapped IPv6 address is refused")
case("tcp.bind.multicast", "all", "tcp-bind", ("224.0.0.1:0",), "invalid-argument",
     "a multicast address is not unicast")
case("tcp.bind.in-use", "all", "tcp-bind-in-use", ("127.0.0.1:0",), "address-in-use",
     "the port of a listener of this guest")
case("tcp.bind.not-bindable", "all", "tcp-bind", ("192.0.2.1:0",), "address-not-bindable",
     "an address no local interface has (TEST-NET-1), allowed by the rules")
case("tcp.bind.denied", "tcp-selective", "tcp-bind", ("127.0.0.2:0",), "access-denied",
     "an address no inbound rule names")
case("tcp.bind.denied-no-rules", "none", "tcp-bind", ("127.0.0.1:0",), "access-denied",
     "no rules at all")
case("tcp.bind.retry-after-denied", "tcp-selective", "tcp-bind-retry",
     ("127.0.0.2:0", "127.0.0.1:0"), "value:access-denied,ok",
     "a failed bind leaves the socket unbound: a second, allowed bind works")
case("tcp.bind.reuse-after-close", "all", "tcp-rebind-after-close", (), "ok",
     "a port whose connection this side closed first (TIME_WAIT) can be bound again")
case("tcp.local-address.unbound", "all", "tcp-local-address-unbound", (), "invalid-state",
     "local-address before bind")
case("tcp.remote-address.unbound", "all", "tcp-remote-address", ("",), "invalid-state",
     "remote-address of a fresh socket")
case("tcp.remote-address.bound", "all", "tcp-remote-address", ("127.0.0.1:0",), "invalid-state",
     "remote-address of a bound, unconnected socket")

# -- tcp: connect --------------------------------------------------------------------------
case("tcp.connect.allowed", "all", "tcp-connect-addresses", ("{echo}",),
     "value:remote={echo} local-port-set=True",
     "connect: remote-address is the peer, the implicit bind set a local port")
case("tcp.connect.ipv6", "all6", "tcp-connect", ("{echo6}", "ipv6"), "ok", "IPv6 connect")
case("tcp.connect.refused", "all", "tcp-connect", ("{closed}",), "connection-refused",
     "nobody listens")
case("tcp.connect.finish-not-started", "all", "tcp-finish-connect-only", (), "not-in-progress",
     "finish-connect without start-connect")
case("tcp.connect.would-block-until-ready", "all", "tcp-connect-progress", ("{silent}",),
     "re:value:(would-block,ok|ok-at-once:ok)",
     "finish-connect says would-block until the pollable is ready, then completes")
case("tcp.connect.twice", "all", "tcp-connect-twice", ("{echo}",), "invalid-state",
     "start-connect on a connected socket")
case("tcp.connect.start-twice", "all", "tcp-start-connect-twice", ("{silent}",),
     "re:concurrency-conflict|invalid-state", "start-connect while a connect is in progress")
case("tcp.connect.after-failure", "all", "tcp-connect-after-failure", ("{closed}", "{echo}"),
     "value:connection-refused,invalid-state",
     "after a failed connect the socket is closed: no second connect")
case("tcp.connect.listening", "all", "tcp-connect-listening", ("{echo}",), "invalid-state",
     "start-connect on a listening socket")
case("tcp.connect.port-zero", "all", "tcp-connect", ("127.0.0.1:0",), "invalid-argument",
     "port 0 is not a destination")
case("tcp.connect.unspecified", "all", "tcp-connect", ("0.0.0.0:{echo_port}",),
     "invalid-argument", "INADDR_ANY is not a destination")
case("tcp.connect.broadcast", "all", "tcp-connect", ("255.255.255.255:80",), "invalid-argument",
     "broadcast is not unicast")
case("tcp.connect.multicast", "all", "tcp-connect", ("224.0.0.1:80",), "invalid-argument",
     "multicast is not unicast")
case("tcp.connect.family-mismatch", "all", "tcp-connect", ("{echo}", "ipv6"),
     "invalid-argument", "an IPv4 address on an IPv6 socket")
case("tcp.connect.mapped-ipv4", "all", "tcp-connect", ("[::ffff:127.0.0.1]:{echo_port}", "ipv6"),
     "invalid-argument", "an IPv4-mapped IPv6 address is refused")
case("tcp.connect.denied-port", "tcp-selective", "tcp-connect", ("{witness}",), "access-denied",
     "a port no outbound rule names; the listener there sees no connection")
case("tcp.connect.denied-address", "tcp-selective", "tcp-connect", ("127.0.0.2:{echo_port}",),
     "access-denied", "an address no outbound rule names")
case("tcp.connect.allowed-selective", "tcp-selective", "tcp-connect", ("{echo}",), "ok",
     "the one allowed destination")
case("tcp.connect.denied-no-rules", "none", "tcp-connect", ("{witness}",), "access-denied",
     "no rules at all; the listener there sees no connection")
case("tcp.connect.deny-wins", "tcp-deny", "tcp-connect", ("{echo}",), "access-denied",
     "a deny rule beats an allow rule")
case("tcp.connect.deny-leaves-others", "tcp-deny", "tcp-connect", ("{closed}",),
     "connection-refused", "the allow rule still covers other ports")
case("tcp.connect.inbound-rule-is-not-outbound", "tcp-inbound-only", "tcp-listen-denied-connect",
     ("127.0.0.1:0",), "access-denied",
     "the guest may listen, but connecting to its own listener needs an outbound rule")

# -- tcp: listen and accept ----------------------------------------------------------------
case("tcp.listen.unbound", "all", "tcp-listen-unbound", (), "invalid-state",
     "start-listen needs an explicit bind")
case("tcp.listen.finish-not-started", "all", "tcp-finish-listen-only", ("127.0.0.1:0",),
     "not-in-progress", "finish-listen without start-listen")
case("tcp.listen.is-listening", "all", "tcp-is-listening", ("127.0.0.1:0",), "value:False,True",
     "is-listening is false before and true after listen")
case("tcp.listen.twice", "all", "tcp-listen-twice", ("127.0.0.1:0",), "invalid-state",
     "start-listen on a listening socket")
case("tcp.listen.connected", "all", "tcp-listen-connected", ("{echo}",), "invalid-state",
     "start-listen on a connected socket")
case("tcp.listen.backlog", "all", "tcp-backlog", ("127.0.0.1:0", 16), "ok",
     "set-listen-backlog-size before listen")
case("tcp.listen.backlog-zero", "all", "tcp-backlog", ("127.0.0.1:0", 0), "invalid-argument",
     "a backlog of 0 is refused")
case("tcp.listen.backlog-after-listen", "all", "tcp-backlog-after-listen", ("127.0.0.1:0", 32),
     "re:ok|not-supported", "set-listen-backlog-size on a listening socket: ok, or not-supported")
case("tcp.listen.allowed-inbound-only", "tcp-inbound-only", "tcp-is-listening", ("127.0.0.1:0",),
     "value:False,True", "an inbound rule alone allows bind and listen")
case("tcp.accept.not-listening", "all", "tcp-accept-not-listening", ("127.0.0.1:0",),
     "invalid-state", "accept on a bound socket that is not listening")
case("tcp.accept.would-block", "all", "tcp-accept-nothing", ("127.0.0.1:0",), "would-block",
     "accept with no pending connection")
case("tcp.accept.roundtrip", "all", "tcp-accept", ("ipv4",), "value:peer-is-client=True ping,pong",
     "accept returns the peer's socket and streams that carry bytes both ways")
case("tcp.accept.roundtrip-ipv6", "all6", "tcp-accept", ("ipv6",),
     "value:peer-is-client=True ping,pong", "the same over IPv6")
case("tcp.accept.inherits-keep-alive", "all", "tcp-accept-inherits",
     ("keep_alive_enabled", True), "value:True",
     "keep-alive-enabled set on the listener is inherited by the accepted socket")
case("tcp.accept.inherits-hop-limit", "all", "tcp-accept-inherits", ("hop_limit", 42),
     "value:42", "hop-limit set on the listener is inherited")

# -- tcp: streams and shutdown -------------------------------------------------------------
case("tcp.stream.echo", "all", "stream-echo", ("{echo}", 5), "value:5 exact=True",
     "write, then read the echo back")
case("tcp.stream.echo-256k", "all", "stream-echo", ("{echo}", 262144),
     "value:262144 exact=True", "256 KiB through the streams, every byte exact")
case("tcp.stream.read-nothing", "all", "stream-read-nothing", ("{silent}",), "value:0",
     "read with nothing waiting returns no bytes at once, not an error")
case("tcp.stream.readable-after-data", "all", "stream-readiness", ("{echo}", True), "value:True",
     "the input stream's pollable is ready once the echo arrives")
case("tcp.stream.not-readable", "all", "stream-readiness", ("{silent}", False), "value:False",
     "the input stream's pollable is not ready without data")
case("tcp.stream.check-write", "all", "stream-check-write", ("{echo}",), "value:True",
     "check-write on a fresh connection permits bytes")
case("tcp.stream.peer-closes", "all", "stream-peer-closes", ("{echo}",),
     "value:bye,stream:closed", "after the peer closes, read returns the data, then closed")
case("tcp.shutdown.send-closes-output", "all", "stream-after-shutdown", ("{echo}", "send"),
     "stream:closed", "after shutdown(send) the output stream is closed")
case("tcp.shutdown.receive-ends-input", "all", "stream-after-shutdown", ("{silent}", "receive"),
     "value:0,stream:closed", "after shutdown(receive) the input stream reports the end")
case("tcp.shutdown.both", "all", "shutdown-both", ("{echo}",), "ok",
     "shutdown(both) on a connected socket")
case("tcp.shutdown.unconnected", "all", "shutdown-unconnected", ("",), "invalid-state",
     "shutdown of a fresh socket")
case("tcp.shutdown.bound", "all", "shutdown-unconnected", ("127.0.0.1:0",), "invalid-state",
     "shutdown of a bound, unconnected socket")

# -- tcp: options ----------------------------------------------------------------------------
SECOND = 1_000_000_000
for option, value, expect in [
        ("keep_alive_enabled", True, "value:True"),
        ("keep_alive_idle_time", 30 * SECOND, f"value:{30 * SECOND}"),
        ("keep_alive_interval", 10 * SECOND, f"value:{10 * SECOND}"),
        ("keep_alive_count", 5, "value:5"),
        ("hop_limit", 42, "value:42"),
        ("receive_buffer_size", 65536, f"re:value:{PORT}"),
        ("send_buffer_size", 65536, f"re:value:{PORT}")]:
    name = option.replace("_", "-")
    case(f"tcp.option.{name}", "all", "tcp-option", (option, value), expect,
         f"set-{name}, then {name} reads it back (buffer sizes may be rounded)")
    if option != "keep_alive_enabled":
        case(f"tcp.option.{name}-zero", "all", "tcp-option", (option, 0), "invalid-argument",
             f"set-{name} to 0 is refused")
case("tcp.option.keep-alive-disabled", "all", "tcp-option", ("keep_alive_enabled", False),
     "value:False", "keep-alive can be turned off again")
case("tcp.option.on-connected", "all", "tcp-option", ("hop_limit", 7, "{echo}"), "value:7",
     "options apply to a connected socket too")

# -- udp -------------------------------------------------------------------------------------
case("udp.bind.ephemeral", "all", "udp-bind", ("127.0.0.1:0",), f"re:value:127\\.0\\.0\\.1:{PORT}",
     "start-bind + finish-bind on port 0")
case("udp.bind.ipv6", "all6", "udp-bind", ("[::1]:0", "ipv6"), f"re:value:\\[::1\\]:{PORT}",
     "bind an IPv6 UDP socket")
case("udp.bind.finish-not-started", "all", "udp-finish-bind-only", (), "not-in-progress",
     "finish-bind without start-bind")
case("udp.bind.twice", "all", "udp-bind-twice", ("127.0.0.1:0",), "invalid-state",
     "start-bind on a bound socket")
case("udp.bind.family-mismatch", "all", "udp-bind", ("[::1]:0", "ipv4"), "invalid-argument",
     "an IPv6 address on an IPv4 socket")
case("udp.bind.not-bindable", "all", "udp-bind", ("192.0.2.1:0",), "address-not-bindable",
     "an address no local interface has, allowed by the rules")
case("udp.bind.denied-no-rules", "none", "udp-bind", ("127.0.0.1:0",), "access-denied",
     "no rules at all")
case("udp.local-address.unbound", "all", "udp-local-address-unbound", (), "invalid-state",
     "local-address before bind")
case("udp.stream.unbound", "all", "udp-stream-unbound", ("{udp_echo}",), "invalid-state",
     "stream on an unbound socket")
case("udp.stream.family-mismatch", "all", "udp-stream", ("127.0.0.1:0", "[::1]:9"),
     "invalid-argument", "stream with an IPv6 remote on an IPv4 socket")
case("udp.stream.port-zero", "all", "udp-stream", ("127.0.0.1:0", "127.0.0.1:0"),
     "invalid-argument", "stream with a remote port of 0")
case("udp.stream.unspecified", "all", "udp-stream", ("127.0.0.1:0", "0.0.0.0:{udp_port}"),
     "invalid-argument", "stream with INADDR_ANY as the remote")
case("udp.bind.implicit-no-rule", "udp-selective", "udp-bind", ("0.0.0.0:0",),
     f"re:value:0\\.0\\.0\\.0:{PORT}",
     "a bind to the unspecified address and port 0 is the implicit bind: no inbound rule needed")
case("udp.bind.explicit-denied", "udp-selective", "udp-bind", ("127.0.0.1:0",), "access-denied",
     "a bind to a chosen address needs an inbound rule")
case("udp.stream.denied", "udp-selective", "udp-stream", ("0.0.0.0:0", "127.0.0.1:9"),
     "access-denied", "stream connected to a remote no outbound rule names")
case("udp.echo.connected", "all", "udp-echo", ("127.0.0.1:0", "{udp_echo}", "", "ipv4"),
     "value:sent=1 ping from={udp_echo}", "stream(remote): send without address, receive the echo")
case("udp.echo.unconnected", "all", "udp-echo", ("127.0.0.1:0", "", "{udp_echo}", "ipv4"),
     "value:sent=1 ping from={udp_echo}", "stream(none): send to an address, receive its echo")
case("udp.echo.ipv6", "all6", "udp-echo", ("[::1]:0", "", "{udp_echo6}", "ipv6"),
     "value:sent=1 ping from={udp_echo6}", "the same over IPv6")
case("udp.echo.selective", "udp-selective", "udp-echo", ("0.0.0.0:0", "", "{udp_echo}",
                                                        "ipv4"),
     "value:sent=1 ping from={udp_echo}", "the allowed destination, and its reply")
case("udp.send.no-remote-unconnected", "all", "udp-send", ("127.0.0.1:0", "", ""),
     "invalid-argument", "a datagram without an address on an unconnected stream")
case("udp.send.other-remote-connected", "all", "udp-send",
     ("127.0.0.1:0", "{udp_echo}", "127.0.0.1:9"), "invalid-argument",
     "a datagram to another address on a connected stream")
case("udp.send.family-mismatch", "all", "udp-send", ("127.0.0.1:0", "", "[::1]:9"),
     "invalid-argument", "an IPv6 destination on an IPv4 socket")
case("udp.send.too-large", "all", "udp-send", ("127.0.0.1:0", "", "{udp_echo}", 70000),
     "datagram-too-large", "a datagram larger than UDP carries")
case("udp.send.denied", "udp-selective", "udp-send", ("0.0.0.0:0", "", "{udp_witness}"),
     "access-denied", "a destination no outbound rule names; nothing reaches it")
case("udp.send.denied-no-rules", "none", "udp-send", ("127.0.0.1:0", "", "{udp_witness}"),
     "re:(value:bind:)?access-denied", "no rules at all (the bind or the send is refused)")
case("udp.receive.nothing", "all", "udp-receive-nothing", ("127.0.0.1:0",), "value:0",
     "receive with nothing waiting returns an empty list at once")
case("udp.receive.filtered", "udp-selective", "udp-filter", ("0.0.0.0:0", "{control}"),
     "value:ack from-control=True",
     "a datagram from a sender no rule names (the control peer's second port) is dropped; "
     "the control's own reply arrives")
case("udp.receive.zero", "all", "udp-receive-zero", ("127.0.0.1:0",), "value:0",
     "receive(0) returns an empty list")
case("udp.send.nothing", "all", "udp-send-nothing", ("127.0.0.1:0",), "value:0",
     "send of an empty list sends nothing and says 0")
case("udp.stream.disconnect", "all", "udp-disconnect", ("127.0.0.1:0", "{udp_echo}"),
     "value:{udp_echo},invalid-state",
     "stream(remote) then stream(none): remote-address is invalid-state again")
case("udp.check-send", "all", "udp-check-send", ("127.0.0.1:0",), "value:True",
     "check-send on a fresh stream permits datagrams")
case("udp.remote-address.unconnected", "all", "udp-remote-address", ("127.0.0.1:0", ""),
     "invalid-state", "remote-address of an unconnected socket")
case("udp.remote-address.connected", "all", "udp-remote-address", ("127.0.0.1:0", "{udp_echo}"),
     "value:{udp_echo}", "remote-address is the stream's remote")
for option, value, expect in [("unicast_hop_limit", 42, "value:42"),
                              ("receive_buffer_size", 65536, f"re:value:{PORT}"),
                              ("send_buffer_size", 65536, f"re:value:{PORT}")]:
    name = option.replace("_", "-")
    case(f"udp.option.{name}", "all", "udp-option", (option, value), expect,
         f"set-{name}, then {name} reads it back")
    case(f"udp.option.{name}-zero", "all", "udp-option", (option, 0), "invalid-argument",
         f"set-{name} to 0 is refused")

# -- hidden peers (capsock's --peer-address=hidden) -----------------------------------------
case("tcp.accept.peer-hidden", "hidden", "tcp-accepted-peer", ("ipv4",), "value:192.0.0.8:0",
     "accept's socket reports the stand-in peer (RFC 7600's dummy address, port 0)")
case("tcp.accept.peer-hidden-ipv6", "hidden6", "tcp-accepted-peer", ("ipv6",), "value:[100::]:0",
     "the IPv6 stand-in (RFC 6666's discard-only prefix)")
case("udp.receive.sender-hidden", "hidden", "udp-echo", ("127.0.0.1:0", "", "{udp_echo}", "ipv4"),
     "value:sent=1 ping from=192.0.0.8:0", "a datagram's sender is the stand-in")
case("tcp.connect.remote-not-hidden", "hidden", "tcp-connect-addresses", ("{echo}",),
     "value:remote={echo} local-port-set=True",
     "the address the guest connected to is its own knowledge: not replaced")

# -- ip-name-lookup --------------------------------------------------------------------------
case("ip-name-lookup.ipv4-literal", "all", "lookup", ("127.0.0.1",), "value:127.0.0.1",
     "an IP address string is returned as it is")
case("ip-name-lookup.ipv6-literal", "all", "lookup", ("::1",), "value:::1",
     "an IPv6 address string is returned as it is")
case("ip-name-lookup.exhausted", "all", "lookup-exhausted", ("127.0.0.1",), "value:none,none,none",
     "after the last address, resolve-next-address keeps returning none")
case("ip-name-lookup.invalid-name", "all", "lookup", ("not a name!",), "invalid-argument",
     "a syntactically invalid name")
case("ip-name-lookup.unknown-name", "all", "lookup", ("nx.invalid",), "name-unresolvable",
     "a name that does not exist")
case("ip-name-lookup.denied-no-rules", "none", "lookup", ("nx.invalid",), "access-denied",
     "no rules at all: denied before any query")
case("ip-name-lookup.allowed", "names", "lookup", ("svc.test",), "value:127.0.0.1",
     "a name an --allow-resolve rule names")
case("ip-name-lookup.allowed-dual", "names", "lookup", ("dual.test",), "value:127.0.0.1,::1",
     "every address of the name")
case("ip-name-lookup.denied-name", "names", "lookup", ("other.test",), "access-denied",
     "a name no rule names")
case("ip-name-lookup.allowed-unknown", "names", "lookup", ("nx.test",), "name-unresolvable",
     "an allowed name the DNS does not know")
case("ip-name-lookup.name-rule-connect", "names", "lookup-then-connect", ("name.test",
                                                                        "{echo_port}"),
     "ok", "an outbound rule by name allows the addresses that name resolved to")
case("ip-name-lookup.name-rule-other-port", "names", "lookup-then-connect", ("name.test",
                                                                           "{closed_port}"),
     "access-denied", "... on the rule's port only")

WASI_CASES_BY_ID = {c.id: c for c in WASI_CASES}
assert len(WASI_CASES_BY_ID) == len(WASI_CASES), "duplicate wasi case id"
