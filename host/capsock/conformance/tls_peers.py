"""The `tls` extension's peers: a throwaway PKI and TLS servers.

The PKI (made per run with `cryptography`, written to a temporary folder
the host is pointed at with ``--tls-ca``): a CA, and leaf certificates for
``localhost``, ``svc.test`` and ``127.0.0.1`` signed by it; one for
``wrong.test``; an expired one; one from a CA the host does not trust; a
self-signed one.

Each server speaks TLS with Python's `ssl` over memory BIOs through two
callables (`recv`, `send`), so the same code serves a real socket (OS
backend) and a virtual connection (in-memory backend). Behaviours:
``echo`` (echo until the client's close_notify, then answer it) and
``truncate`` (send ``partial`` and close the TCP connection without
close_notify).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: The names the good certificates are valid for.
NAMES = ("localhost", "svc.test", "127.0.0.1")
#: server name -> (certificate kind, behaviour); the harness starts one each.
SERVERS: dict[str, tuple[str, str]] = {
    "tls_ok": ("good", "echo"),
    "tls_wrong": ("wrong-name", "echo"),
    "tls_expired": ("expired", "echo"),
    "tls_unknown": ("unknown-ca", "echo"),
    "tls_self": ("self-signed", "echo"),
    "tls_truncate": ("good", "truncate"),
}


@dataclass(frozen=True)
class TestPki:
    """Where the PKI's files are: the CA, and one (cert, key) per kind."""

    ca: Path
    leaves: dict[str, tuple[Path, Path]]

    def server_context(self, kind: str) -> ssl.SSLContext:
        cert, key = self.leaves[kind]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.set_alpn_protocols(["h2", "http/1.1"])
        return context


def make_pki(folder: Path) -> TestPki:
    """Write a CA and the leaf kinds of `SERVERS` into `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def ca(text: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(text)).issuer_name(name(text))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + 30 * day)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        return cert, key

    def leaf(names: tuple[str, ...], issuer: tuple[x509.Certificate,
                                                   ec.EllipticCurvePrivateKey] | None,
             start: datetime.datetime, end: datetime.datetime, kind: str) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for entry in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                sans.append(x509.DNSName(entry))
        issuer_name, signer = ((issuer[0].subject, issuer[1]) if issuer is not None
                               else (name(names[0]), key))
        cert = (x509.CertificateBuilder().subject_name(name(names[0])).issuer_name(issuer_name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(end)
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(signer, hashes.SHA256()))
        cert_path, key_path = folder / f"{kind}.pem", folder / f"{kind}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key_pem(key))
        leaves[kind] = (cert_path, key_path)

    folder.mkdir(parents=True, exist_ok=True)
    trusted, untrusted = ca("capsock conformance CA"), ca("an untrusted CA")
    (folder / "ca.pem").write_bytes(trusted[0].public_bytes(serialization.Encoding.PEM))
    leaves: dict[str, tuple[Path, Path]] = {}
    leaf(NAMES, trusted, now - day, now + 30 * day, "good")
    leaf(("wrong.test",), trusted, now - day, now + 30 * day, "wrong-name")
    leaf(NAMES, trusted, now - 30 * day, now - day, "expired")
    leaf(NAMES, untrusted, now - day, now + 30 * day, "unknown-ca")
    leaf(NAMES, None, now - day, now + 30 * day, "self-signed")
    return TestPki(folder / "ca.pem", leaves)


def serve_tls(recv: Callable[[int], bytes], send: Callable[[bytes], None],
              context: ssl.SSLContext, behaviour: str) -> None:
    """One server-side TLS connection over `recv`/`send`; returns when it
    is over (the caller closes the connection). Failures end it quietly:
    the client side is what the cases check."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=True)

    def flush() -> None:
        data = outgoing.read()
        if data:
            send(data)

    def drive(operation: Callable[[], object]) -> object:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                flush()
                data = recv(65536)
                if data:
                    incoming.write(data)
                else:
                    incoming.write_eof()
                continue
            flush()
            return result

    try:
        drive(tls.do_handshake)
        if behaviour == "truncate":
            drive(lambda: tls.write(b"partial"))
            return
        while True:
            try:
                data = drive(lambda: tls.read(65536))
            except ssl.SSLZeroReturnError:
                data = b""
            assert isinstance(data, bytes)
            if not data:  # the client's close_notify (read says b""): answer it
                drive(tls.unwrap)
                return
            drive(lambda chunk=data: tls.write(chunk))  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - a failed handshake is the case being checked
        try:
            flush()
        except Exception:  # noqa: BLE001
            pass


__all__ = ["NAMES", "SERVERS", "TestPki", "make_pki", "serve_tls"]
