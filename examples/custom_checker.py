"""Embedding capsock with your own checker instead of capsock's rules.

A checker is any object with one method, ``check(use, target, resolved)``;
the host asks it before every socket operation and lookup of the guest
(see docs/embedding.md). This one keeps an allow-list the embedder could
change at run time (a service registry, say) and prints every question.
No OS socket is opened: the guest talks to an in-process echo service.

1. the client guest resolves `svc.test` and connects to it: allowed;
2. then to a port the list does not name: `access-denied`, and the
   service never sees a connection.

    python examples/custom_checker.py [BUILD_DIR]
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host"))

from capsock import (  # noqa: E402  (after the path tweak, for a checkout without install)
    Decision,
    Endpoint,
    Host,
    MemoryBackend,
    Use,
    VirtualConnection,
    VirtualNetwork,
)
from capsock.policy import Resolved  # noqa: E402


class ServiceRegistry:
    """Allows the services it lists, by name, and nothing else."""

    def __init__(self, services: dict[str, set[int]]) -> None:
        self.services = services  # name -> ports
        self.lock = threading.Lock()

    def check(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        decision = self._decide(use, target, resolved)
        print(f"[checker] {use.value} {target}: "
              f"{'allow' if decision.allowed else 'deny'} ({decision.rule})", flush=True)
        return decision

    def _decide(self, use: Use, target: Endpoint | str, resolved: Resolved) -> Decision:
        with self.lock:
            if isinstance(target, str):  # Use.RESOLVE: the name
                return Decision(target in self.services, "registry names")
            if use in (Use.TCP_IMPLICIT_BIND, Use.UDP_IMPLICIT_BIND):
                return Decision(True, "ephemeral ports")
            if use is not Use.TCP_CONNECT:
                return Decision(False, "clients only")
            # `resolved`: what each name resolved to for this instance
            for name, ports in self.services.items():
                if target.ip in resolved.get(name, frozenset()) and target.port in ports:
                    return Decision(True, f"registry {name}:{target.port}")
            return Decision(False, None)


def echo_service(conn: VirtualConnection) -> None:
    data = conn.recv_all()
    print(f"[service] {conn.remote_address} sent {data!r}", flush=True)
    conn.sendall(b"echo: " + data)


def main(build: Path) -> int:
    network = VirtualNetwork(names={"svc.test": ["10.0.0.5"]})
    service = network.listen("10.0.0.5:7")
    service.serve(echo_service)
    host = Host(checker=ServiceRegistry({"svc.test": {7}}), backend=MemoryBackend(network))

    print("[embedder] client guest -> svc.test:7 (listed)", flush=True)
    allowed = host.run(build / "client.wasm", ["svc.test:7", "hello from the guest"])
    print(f"[embedder] exit code {allowed}", flush=True)

    print("[embedder] client guest -> 10.0.0.5:8 (not listed)", flush=True)
    denied = host.run(build / "client.wasm", ["10.0.0.5:8", "should not arrive"])
    print(f"[embedder] exit code {denied}", flush=True)
    service.close()
    return 0 if allowed == 0 and denied != 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"))
