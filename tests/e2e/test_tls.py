"""TLS end to end: a real guest, real TLS peers, a real test PKI.

- The client side: the `tlsclient` guest's unmodified `urllib.request`,
  `http.client` and `ssl` code against native Python TLS servers, with
  ``--tls-ca`` trusting the test CA and ``--dns`` naming ``svc.test``: a
  good certificate works, each bad one raises `SSLCertVerificationError`
  with CPython's message and the reason, a name the policy does not allow
  raises `PermissionError` before any ClientHello.
- The server side: the `http` guest behind ``--tls-listen``, fetched with
  curl (byte-exact files), inspected with ``openssl s_client``, with and
  without client certificates; a guest's server-side ``wrap_socket``.
- The keys stay outside: a guest cannot read the key files.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import BUILD, ROOT, capsock_env
from ..dns_server import DnsServer
from ..tls_pki import Pki, make_pki
from .apps import run_tool, start_app, tool
from .helpers import Running, run_capsock
from .tls_peers import TlsPeer, echo_handler, https_handler, starttls_handler

APPS = ("tlsclient", "http")


@pytest.fixture(scope="module")
def guests() -> dict[str, Path]:
    """The guests these tests run (only these are built)."""
    done = subprocess.run([sys.executable, str(ROOT / "guest" / "build.py"), *APPS],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=capsock_env())
    if done.returncode != 0:
        pytest.fail(f"guest build failed:\n{done.stdout}\n{done.stderr}")
    return {app: BUILD / f"{app}.wasm" for app in APPS}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer({"svc.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}) as server:
        yield server


def guest_lines(output: str) -> dict[str, str]:
    """``key: value`` lines of the guest's stdout."""
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            found[key] = value
    return found


def run_client(guests: dict[str, Path], pki: Pki, dns: DnsServer, port: int,
               *args: str, rule: str | None = None, extra: tuple[str, ...] = ()
               ) -> subprocess.CompletedProcess[str]:
    flags = ["--tls-ca", str(pki.ca), "--tls-ca-only", "--dns", dns.address,
             f"--allow-outbound={rule or f'tcp://svc.test:{port}'}", *extra]
    return run_capsock("run", *flags, str(guests["tlsclient"]), *args, timeout=120)


# -- the client side ------------------------------------------------------------

def test_urlopen_https_under_a_name_rule(guests: dict[str, Path], pki: Pki, dns: DnsServer,
                                        tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    with TlsPeer(https_handler(pki.server.server_context(), b"hello")) as peer:
        done = run_client(guests, pki, dns, peer.port, "urlopen",
                          f"https://svc.test:{peer.port}/index", extra=("--audit-log", str(audit)))
    assert done.returncode == 0, done.stdout + done.stderr
    seen = guest_lines(done.stdout)
    assert seen["status"] == "200"
    assert seen["body"] == "hello /index"
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    tls = [line for line in lines if line["operation"] == "tls-handshake"]
    assert len(tls) == 1
    assert tls[0]["allowed"] is True and tls[0]["rule"] == "verified"
    assert tls[0]["target"] == f"connect svc.test 127.0.0.1:{peer.port}"


def test_http_client_https_connection(guests: dict[str, Path], pki: Pki,
                                      dns: DnsServer) -> None:
    with TlsPeer(https_handler(pki.server.server_context(), b"conn")) as peer:
        done = run_client(guests, pki, dns, peer.port, "https", "svc.test", str(peer.port),
                          "/p")
    assert done.returncode == 0, done.stdout + done.stderr
    assert guest_lines(done.stdout)["body"] == "conn /p"


#: leaf -> (verify_code, capsock reason, CPython's message)
BAD = {
    "wrong_name": (62, "hostname-mismatch",
                   "certificate verify failed: Hostname mismatch, certificate is not valid "
                   "for 'svc.test'."),
    "expired": (10, "expired", "certificate verify failed: certificate has expired"),
    "unknown_ca": (20, "unknown-ca",
                   "certificate verify failed: unable to get local issuer certificate"),
    "self_signed": (18, "self-signed", "certificate verify failed: self-signed certificate"),
}


@pytest.mark.parametrize("leaf", sorted(BAD))
def test_bad_certificates_raise_ssl_cert_verification_error(
        guests: dict[str, Path], pki: Pki, dns: DnsServer, tmp_path: Path, leaf: str) -> None:
    audit = tmp_path / "audit.jsonl"
    code, reason, message = BAD[leaf]
    with TlsPeer(https_handler(getattr(pki, leaf).server_context(), b"x")) as peer:
        done = run_client(guests, pki, dns, peer.port, "urlopen",
                          f"https://svc.test:{peer.port}/", extra=("--audit-log", str(audit)))
    assert done.returncode == 1
    error = guest_lines(done.stdout)["error"]
    assert error.startswith(f"SSLCertVerificationError {code} {reason} "), error
    assert f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}" in error
    tls = [json.loads(line) for line in audit.read_text().splitlines()
           if '"tls-handshake"' in line]
    assert [(t["allowed"], t["rule"].split(":")[0]) for t in tls] == [(False, "not verified")]
    assert reason in tls[0]["rule"]


def test_a_name_the_policy_does_not_allow_sends_no_client_hello(
        guests: dict[str, Path], pki: Pki, dns: DnsServer, tmp_path: Path) -> None:
    """The connection to svc.test's address is allowed (its name rule); TLS
    for other.test on it is not: PermissionError, and the server got a TCP
    connection that carried no byte at all."""
    audit = tmp_path / "audit.jsonl"
    with TlsPeer(echo_handler(pki.server.server_context())) as peer:
        done = run_client(guests, pki, dns, peer.port, "info", "svc.test", str(peer.port),
                          "other.test", extra=("--audit-log", str(audit),
                                               "--allow-resolve=other.test"))
        first = list(peer.first_bytes)
    assert done.returncode == 1
    assert guest_lines(done.stdout)["error"].startswith("PermissionError"), done.stdout
    assert first == [b""]
    denied = [json.loads(line) for line in audit.read_text().splitlines()
              if '"tls-handshake"' in line]
    assert len(denied) == 1 and denied[0]["allowed"] is False
    assert denied[0]["target"].startswith("connect other.test 127.0.0.1:")


def test_an_address_rule_allows_any_name_the_certificate_proves(
        guests: dict[str, Path], pki: Pki, dns: DnsServer) -> None:
    """Under an IP rule the name is free, but must verify: localhost works
    (in the certificate), wrong.test fails verification."""
    with TlsPeer(echo_handler(pki.server.server_context())) as peer:
        rule = f"tcp://127.0.0.1:{peer.port}"
        good = run_client(guests, pki, dns, peer.port, "info", "127.0.0.1", str(peer.port),
                          "localhost", rule=rule)
        bad = run_client(guests, pki, dns, peer.port, "info", "127.0.0.1", str(peer.port),
                         "wrong.test", rule=rule)
    assert good.returncode == 0, good.stdout + good.stderr
    assert guest_lines(good.stdout)["echo"] == "ping"
    assert guest_lines(bad.stdout)["error"].startswith(
        "SSLCertVerificationError 62 hostname-mismatch")


def test_alpn_version_cipher_and_certificate_are_visible(
        guests: dict[str, Path], pki: Pki, dns: DnsServer) -> None:
    context = pki.server.server_context()
    context.set_alpn_protocols(["h2"])
    with TlsPeer(echo_handler(context)) as peer:
        done = run_client(guests, pki, dns, peer.port, "info", "svc.test", str(peer.port),
                          "svc.test", "h2", "http/1.1")
    assert done.returncode == 0, done.stdout + done.stderr
    seen = guest_lines(done.stdout)
    assert seen["alpn"] == "h2"
    assert seen["version"] == "TLSv1.3"
    assert json.loads(seen["cipher"])[1] == "TLSv1.3"
    assert ["DNS", "svc.test"] in json.loads(seen["san"])
    assert int(seen["der"]) > 100
    assert seen["echo"] == "ping"


def test_starttls_and_unwrap(guests: dict[str, Path], pki: Pki, dns: DnsServer) -> None:
    with TlsPeer(starttls_handler(pki.server.server_context())) as peer:
        done = run_client(guests, pki, dns, peer.port, "starttls", "svc.test", str(peer.port),
                          "svc.test")
        errors = list(peer.errors)
    assert done.returncode == 0, done.stdout + done.stderr
    assert errors == []
    seen = guest_lines(done.stdout)
    assert (seen["plain"], seen["tls"], seen["plain again"]) == (
        "ready", "got secret", "plain after")


# -- the server side: host-terminated TLS --------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text("<h1>over TLS</h1>\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 1200 + b"tail")
    return root


def _tls_http(guests: dict[str, Path], pki: Pki, site: Path, *extra: str) -> tuple[Running, int]:
    return start_app(guests["http"], "--tls-listen", "127.0.0.1:0", "--tls-cert",
                     str(pki.server.cert), "--tls-key", str(pki.server.key), *extra,
                     "--dir", f"{site}::/www")


def test_curl_fetches_static_files_byte_exact(guests: dict[str, Path], pki: Pki, site: Path,
                                               tmp_path: Path) -> None:
    app, port = _tls_http(guests, pki, site)
    try:
        out = tmp_path / "blob"
        done = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca), "-o", str(out),
                        f"https://localhost:{port}/blob.bin")
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == (site / "blob.bin").read_bytes()
        both = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca),
                        f"https://localhost:{port}/", f"https://localhost:{port}/index.html")
        assert both.returncode == 0, both.stderr
        assert both.stdout == "<h1>over TLS</h1>\n" * 2
    finally:
        app.kill()


def test_openssl_s_client_shows_the_certificate(guests: dict[str, Path], pki: Pki,
                                                site: Path) -> None:
    app, port = _tls_http(guests, pki, site)
    try:
        tool("openssl")
        done = run_tool("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                        "localhost", "-CAfile", str(pki.ca), "-showcerts", stdin="")
        leaf = ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(
            pki.server.cert.read_text().split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n"))
        assert "Verify return code: 0 (ok)" in done.stdout
        body = "".join(leaf.splitlines()[1:-1])
        assert body in "".join(done.stdout.split())
    finally:
        app.kill()


def test_client_certificates_with_tls_client_ca(guests: dict[str, Path], pki: Pki,
                                                site: Path) -> None:
    app, port = _tls_http(guests, pki, site, "--tls-client-ca", str(pki.client_ca))
    try:
        url = f"https://localhost:{port}/"
        without = run_tool("curl", "-sS", "--cacert", str(pki.ca), url)
        assert without.returncode != 0
        assert "certificate required" in without.stderr
        with_cert = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca), "--cert",
                             str(pki.client.cert), "--key", str(pki.client.key), url)
        assert with_cert.returncode == 0, with_cert.stderr
        assert with_cert.stdout == "<h1>over TLS</h1>\n"
    finally:
        app.kill()


def test_a_guest_server_sees_the_verified_client_identity(guests: dict[str, Path],
                                                          pki: Pki) -> None:
    port = _free_port()
    app = Running("run", "--tls-listen", f"127.0.0.1:{port}", "--tls-cert",
                  str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-client-ca",
                  str(pki.client_ca), f"--allow-inbound=tcp://127.0.0.1:{port}",
                  str(guests["tlsclient"]), "serve", "127.0.0.1", str(port))
    try:
        app.wait_for("listening on")
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname="svc.test") as conn:
                conn.sendall(b"hello\n")
                answer = json.loads(conn.makefile("rb").readline())
                version = conn.version()
        assert answer["line"] == "hello"
        assert answer["version"] == version
        assert answer["client"]["commonName"] == "guest client"
        assert ["email", "client@example.test"] in answer["client_san"]
        code, _, stderr = app.finish()
        assert code == 0, stderr
    finally:
        app.kill()


def test_server_side_wrap_socket_needs_a_host_terminated_listener(
        guests: dict[str, Path]) -> None:
    port = _free_port()
    done = run_capsock("run", "--tcplisten", f"127.0.0.1:{port}",
                       f"--allow-inbound=tcp://127.0.0.1:{port}", str(guests["tlsclient"]),
                       "serve", "127.0.0.1", str(port), timeout=120)
    assert done.returncode == 1
    error = guest_lines(done.stdout)["error"]
    assert error.startswith("SSLError") and "--tls-listen" in error


def test_the_guest_cannot_read_the_key_files(guests: dict[str, Path], pki: Pki,
                                             site: Path) -> None:
    """The key is the host's: a guest with a --dir next to it still cannot
    name it, by its host path or by climbing out of its directory."""
    key = pki.server.key
    done = run_capsock("run", "--tls-listen", "127.0.0.1:0", "--tls-cert", str(pki.server.cert),
                       "--tls-key", str(key), "--dir", f"{site}::/www",
                       str(guests["tlsclient"]), "readfile", "/www/index.html", str(key),
                       f"/www/../{key.parent.name}/{key.name}", f"/{key.name}", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "read /www/index.html: 18 bytes"
    assert len(lines) == 4
    assert all(line.startswith("cannot read ") for line in lines[1:]), lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- serve, limits and the handshake timeout ----------------------------------------------

def test_capsock_serve_shares_a_tls_listener(guests: dict[str, Path], pki: Pki,
                                             site: Path) -> None:
    port = _free_port()
    server = Running("serve", "--instances", "2", "--tls-listen", f"127.0.0.1:{port}",
                     "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
                     "--dir", f"{site}::/www", str(guests["http"]))
    try:
        server.wait_for("listening on")  # the listener is shared: one instance is enough
        seen = set()
        for _ in range(6):
            done = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca),
                            f"https://localhost:{port}/api/instance")
            assert done.returncode == 0, done.stderr
            seen.add(json.loads(done.stdout)["instance"])
        assert seen <= {"0", "1"} and seen
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)


def _limit_lines(audit: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in audit.read_text().splitlines()
            if '"limit"' in line]


def test_handshakes_per_second_limit(guests: dict[str, Path], pki: Pki, site: Path,
                                     tmp_path: Path) -> None:
    """A bucket of one handshake, refilled once in 1000 s: the second
    client is refused (its connection closed unread), with an audit line."""
    audit = tmp_path / "audit.jsonl"
    app, port = _tls_http(guests, pki, site, "--max-tls-handshakes-per-second", "0.001",
                          "--audit-log", str(audit))
    try:
        url = f"https://localhost:{port}/"
        first = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca), url)
        second = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca), url)
        assert first.returncode == 0, first.stderr
        assert second.returncode != 0
        rules = [line["rule"] for line in _limit_lines(audit)]
        assert rules == ["limit tls_handshakes_per_second=0.001"]
    finally:
        app.kill()


def test_concurrent_tls_connections_limit(guests: dict[str, Path], pki: Pki, site: Path,
                                          tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    app, port = _tls_http(guests, pki, site, "--max-tls-connections", "1",
                          "--audit-log", str(audit))
    try:
        context = ssl.create_default_context(cafile=str(pki.ca))
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
                context.wrap_socket(raw, server_hostname="localhost") as held:
            held.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert held.recv(100).startswith(b"HTTP/1.1 200")
            refused = run_tool("curl", "-sS", "--fail", "--cacert", str(pki.ca),
                               f"https://localhost:{port}/")
            assert refused.returncode != 0
        rules = [line["rule"] for line in _limit_lines(audit)]
        assert rules == ["limit max_tls_connections=1"]
    finally:
        app.kill()


def test_a_stalled_handshake_times_out(guests: dict[str, Path], pki: Pki, site: Path,
                                       tmp_path: Path) -> None:
    """A client that connects and never says hello: the host fails the
    handshake after --tls-handshake-timeout (the guest only polls), the
    guest closes the connection, and the audit log says why."""
    audit = tmp_path / "audit.jsonl"
    app, port = _tls_http(guests, pki, site, "--tls-handshake-timeout", "1",
                          "--audit-log", str(audit))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            try:
                end = raw.recv(100)
            except ConnectionResetError:
                end = b""
        assert end == b""
        failed = [json.loads(line) for line in audit.read_text().splitlines()
                  if '"tls-handshake"' in line]
        assert len(failed) == 1 and failed[0]["allowed"] is False
        assert "timed out" in str(failed[0]["rule"])
    finally:
        app.kill()
