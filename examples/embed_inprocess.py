"""Embedding capsock: guests talking to in-process Python services.

No OS socket is opened. The program:

1. builds a VirtualNetwork and starts an in-process echo service on it, at
   10.0.0.5:7 (a "remote host" that exists only in this process);
2. replaces the resolver with a dict (`svc.test` -> 10.0.0.5), wrapped to
   log every query it gets: the policy is checked before, so a denied
   name never reaches it;
3. runs build/client.wasm against `svc.test:7` under one rule, then
   against a port no rule allows (access-denied: the service sees nothing);
4. runs build/echo.wasm on a virtual pre-opened listener (127.0.0.1:8080)
   and talks to it from Python.

    python examples/embed_inprocess.py [BUILD_DIR]
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from capsock import (  # noqa: E402  (after the path tweak, for a checkout without install)
    DictResolver,
    ErrorCode,
    Host,
    IPAddress,
    MemoryBackend,
    NetError,
    Policy,
    TcpListenSpec,
    VirtualConnection,
    VirtualNetwork,
)


class LoggingResolver:
    """A whole resolver in a few lines: any object with `resolve` will do."""

    def __init__(self, inner: DictResolver) -> None:
        self.inner = inner

    def resolve(self, name: str, ipv6: bool | None) -> list[IPAddress]:
        print(f"[resolver] asked for {name}", flush=True)
        return self.inner.resolve(name, ipv6)


def echo_service(conn: VirtualConnection) -> None:
    """The in-process service: reads until end of stream, answers once."""
    data = conn.recv_all()
    print(f"[service] {conn.remote_address} sent {data!r}", flush=True)
    conn.sendall(b"echo: " + data)


def main(build: Path) -> int:
    network = VirtualNetwork()
    service = network.listen("10.0.0.5:7")
    service.serve(echo_service)
    backend = MemoryBackend(network)
    resolver = LoggingResolver(DictResolver({"svc.test": ["10.0.0.5"]}))

    policy = Policy.from_flags(allow_outbound=["tcp://svc.test:7"])
    host = Host(policy=policy, backend=backend, resolver=resolver)
    print("[embedder] client guest -> svc.test:7 (allowed)", flush=True)
    allowed = host.run(build / "client.wasm", ["svc.test:7", "hello from the guest"])
    print(f"[embedder] exit code {allowed}", flush=True)

    print("[embedder] client guest -> 10.0.0.5:8 (no rule)", flush=True)
    denied = host.run(build / "client.wasm", ["10.0.0.5:8", "should not arrive"])
    print(f"[embedder] exit code {denied}", flush=True)

    print("[embedder] echo guest on a virtual pre-opened listener 127.0.0.1:8080", flush=True)
    server_host = Host(backend=backend, tcp_listen=[TcpListenSpec.parse("127.0.0.1:8080")])
    codes: list[int] = []
    guest = threading.Thread(target=lambda: codes.append(
        server_host.run(build / "echo.wasm", ["--max-connections", "1"])))
    guest.start()
    deadline = time.monotonic() + 120
    while True:  # the listener exists once the guest's instance is being set up
        try:
            conn = network.connect("127.0.0.1:8080", timeout=60)
            break
        except NetError as error:
            if error.code is not ErrorCode.CONNECTION_REFUSED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with conn:
        conn.sendall(b"ping from Python")
        conn.shutdown_write()
        print(f"[embedder] the echo guest answered {conn.recv_all()!r}", flush=True)
    guest.join(120)
    print(f"[embedder] echo guest exit code {codes[0] if codes else None}", flush=True)
    service.close()
    return 0 if allowed == 0 and denied != 0 and codes == [0] else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"))
