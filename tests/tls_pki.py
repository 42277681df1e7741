"""A test PKI made fresh in the tests (trustme over `cryptography`).

One CA the host is told to trust (`ca.pem`), and leaf certificates for the
cases the TLS tests need: a good server certificate for ``localhost``,
``svc.test`` and ``127.0.0.1``; one for another name (``wrong.test``); an
expired one; one issued by a CA nobody trusts; a self-signed one (made
with `cryptography` directly: trustme always issues from a CA); and a
client certificate for mutual TLS. Files are written to a directory so
the host (``--tls-ca``, ``--tls-cert``) and real clients (curl, openssl)
can read them; none of them is ever in a guest's ``--dir``.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The names the good server certificate is valid for.
SERVER_NAMES = ("localhost", "svc.test", "127.0.0.1")


@dataclass(frozen=True)
class Leaf:
    """A certificate chain and its key, as PEM files."""

    cert: Path
    key: Path

    def server_context(self, client_ca: Path | None = None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        if client_ca is not None:
            context.load_verify_locations(cafile=str(client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Leaf
    wrong_name: Leaf
    expired: Leaf
    unknown_ca: Leaf
    self_signed: Leaf
    client: Leaf
    #: A CA for client certificates, separate from the server CA.
    client_ca: Path


def _write(leaf: trustme.LeafCert, folder: Path, name: str) -> Leaf:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    leaf.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return Leaf(cert, key)


def _self_signed(folder: Path, name: str) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in SERVER_NAMES if not n[0].isdigit()]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "self-signed.pem", folder / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Leaf(cert_path, key_path)


def make_pki(folder: Path) -> Pki:
    """Write the whole test PKI into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, other_ca, client_ca = trustme.CA(), trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client_ca.cert_pem.write_to_path(str(folder / "client-ca.pem"))
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(*SERVER_NAMES, not_before=now - datetime.timedelta(days=30),
                            not_after=now - datetime.timedelta(days=1))
    return Pki(
        ca=folder / "ca.pem",
        server=_write(ca.issue_cert(*SERVER_NAMES), folder, "server"),
        wrong_name=_write(ca.issue_cert("wrong.test"), folder, "wrong-name"),
        expired=_write(expired, folder, "expired"),
        unknown_ca=_write(other_ca.issue_cert(*SERVER_NAMES), folder, "unknown-ca"),
        self_signed=_self_signed(folder, "svc.test"),
        client=_write(client_ca.issue_cert("client@example.test", common_name="guest client"),
                      folder, "client"),
        client_ca=folder / "client-ca.pem",
    )
