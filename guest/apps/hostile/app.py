"""A guest that misbehaves on purpose, for the limits and teardown tests.

    hostile hold tcp|udp N             create N sockets and keep them all;
                                       print "held K" then "result: CODE"
                                       for the call that failed (if any)
    hostile accept-at-limit HOST:PORT  listen on HOST:PORT, connect to it,
                                       accept: "result: ..." of the accept
    hostile receive TARGET SEND ASK    connect, send SEND bytes, receive(ASK)
                                       once: "received K"
    hostile send TARGET N              connect, one send of N bytes: "sent K"
    hostile poll-many TARGET N         N pollables of one socket in one poll
    hostile buffer tcp|udp N           set-receive-buffer-size(N), print the
                                       value read back: "buffer K"
    hostile crash raise|exit|trap TARGET [N]
                                       connect to TARGET, send a line,
                                       subscribe, then fail without closing:
                                       an exception, exit(3), or a real trap
                                       (use of a dropped handle); with N, first
                                       open N more sockets (a listener, UDP)
    hostile drop-order TARGET LOCAL    drop handles in hostile orders (network
                                       before its sockets, listener before its
                                       accepted child, socket before its
                                       pollable, pollable after the socket),
                                       printing "step NAME: RESULT"
    hostile boundaries TCP UDP         call every function taking a number
                                       with its boundary values (0, 1, the
                                       type's maximum), on a TCP socket
                                       connected to TCP, a UDP socket sending
                                       to UDP, listeners and pollables:
                                       "NAME: RESULT" each, then "done"
    hostile deny-flood N TARGET        N connects to TARGET (denied): "codes
                                       CODE=K ..." at the end
    hostile hidden-scan HOST LOW HIGH  on the first UDP pre-open: receive one
                                       datagram ("from SENDER"), send a probe
                                       to HOST:LOW..HIGH ("scan CODE=K ..."),
                                       then answer the sender it was shown
                                       ("reply RESULT")
    hostile poll-dropped TARGET        poll a pollable the guest dropped: its
                                       bindings cannot lower a dropped handle
                                       and trap before any host call
                                       ("result: ..." only if they did not)
    hostile alloc MIB                  grow a list of 1 MiB blocks up to MIB
                                       MiB: "allocated K" then "result: ok"
                                       or "result: memory-error"
    hostile tenant COUNT               one tenant of the isolation test: a TCP
                                       listener, a UDP socket, COUNT pollables;
                                       prints "port P" and "handles H,..."
                                       (raw handle numbers), then waits for
                                       one connection: "accepted"
    hostile forge HANDLE               the other tenant: uses the raw handle
                                       number HANDLE as a TCP socket ("handle
                                       H: ..."; a handle it does not hold traps)
    hostile send-big TARGET N LANE     one send of N bytes through LANE
                                       (bytes: list<u8> send, latin1: the
                                       fast-io string lane): "result: ok K" or
                                       "result: CODE"

Raw WIT bindings (like the conformance guest), so nothing in the guest
library tidies up behind the test's back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err
from wit_world.imports import socket as wsocket
from wit_world.imports import socket_tcp as wtcp
from wit_world.imports import socket_udp as wudp

import capsock_guest as cg

V4 = wsocket.IpAddressFamily.IPV4
HELD: list[Any] = []  # keeps handles alive until the process ends


def code(error: Err[Any]) -> str:
    return str(error.value.name).lower().replace("_", "-")


def addr(text: str) -> Any:
    return cg.to_wit(cg.parse_address(text))


def step(name: str, action: Callable[[], object]) -> object:
    try:
        value = action()
    except Err as error:
        print(f"step {name}: {code(error)}", flush=True)
        return None
    print(f"step {name}: ok", flush=True)
    return value


def tcp_network() -> wtcp.TcpCapableNetwork:
    network = wtcp.network()
    assert network is not None, "no TCP capability"
    return network


def connected(target: str) -> wtcp.TcpSocket:
    sock = tcp_network().create_tcp_socket(V4)
    sock.connect(addr(target))
    return sock


def hold(protocol: str, count: str) -> int:
    create: Callable[[], Any]
    if protocol == "tcp":
        create = lambda: tcp_network().create_tcp_socket(V4)  # noqa: E731
    else:
        network = wudp.network()
        assert network is not None
        create = lambda: network.create_udp_socket(V4)  # noqa: E731
    try:
        for _ in range(int(count)):
            HELD.append(create())
    except Err as error:
        print(f"held {len(HELD)}", flush=True)
        print(f"result: {code(error)}", flush=True)
        return 0
    print(f"held {len(HELD)}", flush=True)
    return 0


def accept_at_limit(local: str) -> int:
    listener = tcp_network().create_tcp_socket(V4)
    listener.bind(addr(local))
    listener.listen(8)
    client = tcp_network().create_tcp_socket(V4)
    client.connect(listener.local_address())
    HELD.extend([listener, client])
    try:
        HELD.append(listener.accept())
    except Err as error:
        print(f"result: {code(error)}", flush=True)
        return 0
    print("result: ok", flush=True)
    return 0


def receive(target: str, send: str, ask: str) -> int:
    sock = connected(target)
    data = b"x" * int(send)
    sent = 0
    while sent < len(data):
        sent += sock.send(data[sent:])
    poll = sock.subscribe(wsocket.Readiness.READABLE)
    wsocket.poll([poll], 5_000_000_000)
    print(f"received {len(sock.receive(int(ask)))}", flush=True)
    return 0


def send(target: str, count: str) -> int:
    print(f"sent {connected(target).send(b'y' * int(count))}", flush=True)
    return 0


def poll_many(target: str, count: str) -> int:
    sock = connected(target)
    pollables = [sock.subscribe(wsocket.Readiness.WRITABLE) for _ in range(int(count))]
    try:
        ready = wsocket.poll(pollables, 1_000_000_000)
    except Err as error:
        print(f"result: {code(error)}", flush=True)
        return 0
    print(f"result: ok {len(ready)}", flush=True)
    return 0


def buffer(protocol: str, size: str) -> int:
    sock: Any
    if protocol == "tcp":
        sock = tcp_network().create_tcp_socket(V4)
    else:
        network = wudp.network()
        assert network is not None
        sock = network.create_udp_socket(V4)
    sock.set_receive_buffer_size(int(size))
    print(f"buffer {sock.receive_buffer_size()}", flush=True)
    return 0


def crash(how: str, target: str, extra: str = "0") -> int:
    sock = connected(target)
    sock.send(b"half a request\n")
    HELD.append(sock.subscribe(wsocket.Readiness.READABLE))
    HELD.append(sock)
    for _ in range(int(extra)):
        listener = tcp_network().create_tcp_socket(V4)
        listener.listen(4)
        HELD.append(listener)
        network = wudp.network()
        if network is not None:
            HELD.append(network.create_udp_socket(V4))
    if how == "exit":
        sys.exit(3)
    if how == "trap":
        dead = tcp_network().create_tcp_socket(V4)
        dead.__exit__(None, None, None)
        dead.address_family()  # a dropped handle: the component model traps
    raise RuntimeError("the guest gives up mid-connection")


def drop_order(target: str, local: str) -> int:
    network = tcp_network()
    orphan = network.create_tcp_socket(V4)
    network.__exit__(None, None, None)
    step("socket-after-network-dropped", lambda: orphan.connect(addr(target)))
    step("send-after-network-dropped", lambda: orphan.send(b"still mine\n"))

    listener = tcp_network().create_tcp_socket(V4)
    listener.bind(addr(local))
    listener.listen(4)
    client = tcp_network().create_tcp_socket(V4)
    client.connect(listener.local_address())
    child, _ = listener.accept()
    listener.__exit__(None, None, None)
    step("child-after-listener-dropped", lambda: child.send(b"hello"))
    step("child-receive", lambda: client.receive(5))

    pollable = child.subscribe(wsocket.Readiness.READABLE)
    child.__exit__(None, None, None)
    step("poll-after-socket-dropped", lambda: wsocket.poll([pollable], 0))
    pollable.__exit__(None, None, None)

    pending = tcp_network().create_tcp_socket(V4)
    pending.bind(addr(local.rsplit(":", 1)[0] + ":0"))
    pending.listen(4)
    pending.set_blocking(False)
    step("accept-nothing-pending", lambda: pending.accept())
    late = tcp_network().create_tcp_socket(V4)
    late.connect(pending.local_address())
    pending.__exit__(None, None, None)  # dropped with a connection queued
    step("peer-of-dropped-listener", lambda: late.send(b"x"))
    client.__exit__(None, None, None)
    orphan.__exit__(None, None, None)
    print("done", flush=True)
    return 0


def poll_dropped(target: str) -> int:
    pollable = connected(target).subscribe(wsocket.Readiness.READABLE)
    pollable.__exit__(None, None, None)
    try:
        wsocket.poll([pollable], 0)
    except Err as error:
        print(f"result: {code(error)}", flush=True)
        return 0
    except Exception as error:  # refused by the bindings, inside the guest
        print(f"result: refused in the guest ({type(error).__name__})", flush=True)
        return 0
    print("result: ok", flush=True)


U32 = 2**32 - 1
U64 = 2**64 - 1


def outcome(action: Callable[[], object]) -> str:
    try:
        action()
    except Err as error:
        return code(error)
    return "ok"


def boundaries(tcp_target: str, udp_target: str) -> int:
    """Every numeric argument at its edges: each must give a defined result
    (ok or an error code), never `unknown` (the host's unexpected path)."""
    sock = connected(tcp_target)
    udp_network = wudp.network()
    assert udp_network is not None, "no UDP capability"
    udp = udp_network.create_udp_socket(V4)
    six = tcp_network().create_tcp_socket(wsocket.IpAddressFamily.IPV6)
    writable = sock.subscribe(wsocket.Readiness.WRITABLE)
    calls: list[tuple[str, Callable[[], object]]] = []
    for name, target in (("tcp", sock), ("udp", udp)):
        calls += [
            (f"{name}.set-timeout.max", lambda t=target: t.set_timeout(U64)),
            (f"{name}.set-timeout.min", lambda t=target: t.set_timeout(1)),
            (f"{name}.set-timeout.zero", lambda t=target: t.set_timeout(0)),
            (f"{name}.set-timeout.none", lambda t=target: t.set_timeout(None)),
            (f"{name}.set-hop-limit.0", lambda t=target: t.set_hop_limit(0)),
            (f"{name}.set-hop-limit.255", lambda t=target: t.set_hop_limit(255)),
        ]
        for option in ("receive", "send"):
            setter = f"set_{option}_buffer_size"
            calls += [(f"{name}.{setter}.{label}",
                       lambda t=target, s=setter, v=value: getattr(t, s)(v))
                      for label, value in (("0", 0), ("1", 1), ("max", U64))]
    calls += [
        ("tcp6.set-hop-limit.255", lambda: six.set_hop_limit(255)),
        ("tcp.set-keep-alive-idle-time.0", lambda: sock.set_keep_alive_idle_time(0)),
        ("tcp.set-keep-alive-idle-time.1", lambda: sock.set_keep_alive_idle_time(1)),
        ("tcp.set-keep-alive-idle-time.max", lambda: sock.set_keep_alive_idle_time(U64)),
        ("tcp.set-blocking", lambda: sock.set_blocking(False)),
        ("tcp.receive.max", lambda: sock.receive(U64)),
        ("tcp.peek.max", lambda: sock.peek(U64)),
        ("tcp.send.empty", lambda: sock.send(b"")),
        ("tcp.listen.max", lambda: tcp_network().create_tcp_socket(V4).listen(U32)),
        ("tcp.listen.0", lambda: tcp_network().create_tcp_socket(V4).listen(0)),
        ("poll.max", lambda: wsocket.poll([writable], U64)),
        ("poll.zero", lambda: wsocket.poll([writable], 0)),
        ("poll.none", lambda: wsocket.poll([writable], None)),
        ("pollable.block", lambda: writable.block()),
        ("udp.send.empty", lambda: udp.send(b"", addr(udp_target))),
        ("udp.send.too-large", lambda: udp.send(b"z" * 65536, addr(udp_target))),
        ("udp.set-blocking", lambda: udp.set_blocking(False)),
        ("udp.receive.max", lambda: udp.receive(U64)),
        ("udp.peek.max", lambda: udp.peek(U64)),
        ("udp.receive.zero", lambda: udp.receive(0)),
    ]
    for name, action in calls:
        print(f"{name}: {outcome(action)}", flush=True)
    HELD.extend([sock, udp, six, writable])
    print("done", flush=True)
    return 0


def deny_flood(count: str, target: str) -> int:
    sock = tcp_network().create_tcp_socket(V4)
    codes: dict[str, int] = {}
    for _ in range(int(count)):
        result = outcome(lambda: sock.connect(addr(target)))
        codes[result] = codes.get(result, 0) + 1
    print("codes " + " ".join(f"{k}={v}" for k, v in sorted(codes.items())), flush=True)
    return 0


def hidden_scan(host: str, low: str, high: str) -> int:
    raw = [sock for sock, _ in wsocket.preopened_sockets()]
    udp = wudp.UdpSocket.from_socket(raw[0])
    print(f"ready {cg.format_address(udp.local_address())}", flush=True)
    datagram = udp.receive(100)
    print(f"from {cg.format_address(datagram.remote_address)}", flush=True)
    codes: dict[str, int] = {}
    for port in range(int(low), int(high) + 1):
        result = outcome(lambda p=port: udp.send(b"probe", addr(f"{host}:{p}")))
        codes[result] = codes.get(result, 0) + 1
    print("scan " + " ".join(f"{k}={v}" for k, v in sorted(codes.items())), flush=True)
    print(f"reply {outcome(lambda: udp.send(b'reply', datagram.remote_address))}", flush=True)
    return 0


def alloc(mib: str) -> int:
    blocks: list[bytearray] = []
    try:
        for _ in range(int(mib)):
            blocks.append(bytearray(1 << 20))
    except MemoryError:
        count = len(blocks)
        blocks.clear()
        print(f"allocated {count}", flush=True)
        print("result: memory-error", flush=True)
        return 0
    print(f"allocated {len(blocks)}", flush=True)
    print("result: ok", flush=True)
    return 0


def send_big(target: str, count: str, lane: str) -> int:
    from wit_world.imports import fast_io

    try:
        sock = connected(target)
        if lane == "bytes":
            sent = sock.send(b"z" * int(count))
        else:
            sent = fast_io.tcp_send_latin1(sock, "\xe9" * int(count))
    except Err as error:
        print(f"result: {code(error)}", flush=True)
        return 0
    print(f"result: ok {sent}", flush=True)
    return 0


def raw_handle(obj: Any) -> int:
    """The handle number componentize-py keeps for a resource object."""
    value = getattr(obj, "handle", None)
    return value if isinstance(value, int) else -1


def tenant(count: str) -> int:
    listener = tcp_network().create_tcp_socket(V4)
    listener.bind(addr("127.0.0.1:0"))
    listener.listen(8)
    network = wudp.network()
    assert network is not None
    udp = network.create_udp_socket(V4)
    udp.bind(addr("127.0.0.1:0"))
    pollables = [listener.subscribe(wsocket.Readiness.READABLE) for _ in range(int(count))]
    HELD.extend([listener, udp, *pollables])
    print(f"port {listener.local_address().value.port}", flush=True)
    print("handles " + ",".join(str(raw_handle(h)) for h in (listener, udp, *pollables)),
          flush=True)
    wsocket.poll([pollables[0]], 60_000_000_000)
    HELD.append(listener.accept())
    print("accepted", flush=True)
    return 0


def forge(number: str) -> int:
    own = tcp_network().create_tcp_socket(V4)
    HELD.append(own)
    fake = wtcp.TcpSocket.__new__(wtcp.TcpSocket)
    try:
        fake.handle = int(number)  # type: ignore[attr-defined]
    except AttributeError as error:
        print(f"handle {number}: cannot forge ({error})", flush=True)
        return 0
    print(f"handle {number}: forged", flush=True)
    try:
        print(f"handle {number}: {fake.local_address()}", flush=True)
    except Err as error:
        print(f"handle {number}: {code(error)}", flush=True)
    print("done", flush=True)
    return 0


COMMANDS: dict[str, Callable[..., int]] = {
    "hold": hold, "accept-at-limit": accept_at_limit, "receive": receive, "send": send,
    "poll-many": poll_many, "buffer": buffer, "crash": crash, "drop-order": drop_order,
    "poll-dropped": poll_dropped,
    "alloc": alloc, "send-big": send_big, "tenant": tenant, "forge": forge,
    "boundaries": boundaries, "deny-flood": deny_flood,
    "hidden-scan": hidden_scan,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](*argv[1:])


Run = cg.run_main(main)
