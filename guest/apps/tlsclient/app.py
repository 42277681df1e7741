"""TLS client written against the standard library only: urllib,
http.client, ssl and socket, unmodified (no capsock imports).

    tlsclient urlopen URL
    tlsclient https HOST PORT PATH          # http.client.HTTPSConnection
    tlsclient info HOST PORT NAME [ALPN...]  # wrap_socket; negotiated details
    tlsclient starttls HOST PORT NAME        # smtplib-style STARTTLS, then unwrap
    tlsclient serve HOST PORT                # server-side wrap_socket on --tls-listen
    tlsclient readfile PATH...               # try to read files (the key must fail)

A plain script: built, its ``import ssl`` is capsock's drop-in
(`capsock_guest.bsd_ssl`), so the TLS handshake and the certificate
checks run in the host against the host's trust store (``--tls-ca``).
Prints one ``key: value`` line per fact; an exception is printed as
``error: <class> <verify_code> <message>`` and exits 1.
"""

import http.client
import json
import socket
import ssl
import sys
import urllib.error
import urllib.request


def describe(error):
    reason = getattr(error, "reason", None)
    if isinstance(error, urllib.error.URLError) and isinstance(reason, BaseException):
        error = reason
    code = getattr(error, "verify_code", "-")
    why = getattr(error, "capsock_reason", "-") or "-"
    return f"error: {type(error).__name__} {code} {why} {error}"


def urlopen(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    print(f"status: {response.status}")
    print(f"body: {body.decode()}")


def https(host, port, path):
    connection = http.client.HTTPSConnection(host, int(port), timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    print(f"status: {response.status}")
    print(f"version: {connection.sock.version() if connection.sock else '-'}")
    print(f"body: {body.decode()}")
    connection.close()


def info(host, port, name, *alpn):
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(list(alpn))
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            cert = tls.getpeercert()
            print(f"version: {tls.version()}")
            print(f"cipher: {json.dumps(tls.cipher())}")
            print(f"alpn: {tls.selected_alpn_protocol()}")
            print(f"san: {json.dumps(cert['subjectAltName'])}")
            print(f"der: {len(tls.getpeercert(binary_form=True))}")
            tls.sendall(b"ping\n")
            print(f"echo: {tls.recv(100).decode().strip()}")


def starttls(host, port, name):
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"STARTTLS\n")
        print(f"plain: {raw.recv(100).decode().strip()}")
        tls = ssl.create_default_context().wrap_socket(raw, server_hostname=name)
        tls.sendall(b"secret\n")
        print(f"tls: {tls.recv(100).decode().strip()}")
        plain = tls.unwrap()
        plain.sendall(b"after\n")
        print(f"plain again: {plain.recv(100).decode().strip()}")
        plain.close()


def serve(host, port):
    """One connection on the host-terminated listener HOST:PORT: the bind
    takes the --tls-listen pre-open; wrap_socket(server_side=True) accepts
    it because the host terminates its TLS. Answers with what it sees."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain("/no/such/cert.pem")  # the host's --tls-cert is used
    with socket.create_server((host, int(port))) as server:
        listener = context.wrap_socket(server, server_side=True)
        print(f"listening on {host}:{port}", flush=True)
        conn, _ = listener.accept()
        with conn:
            line = conn.recv(100).decode().strip()
            cert = conn.getpeercert()
            seen = {"line": line, "version": conn.version(), "cipher": conn.cipher()[0],
                    "client": dict(pair for rdn in cert["subject"] for pair in rdn)
                    if cert else None,
                    "client_san": cert.get("subjectAltName") if cert else None}
            conn.sendall(json.dumps(seen).encode() + b"\n")
            print(f"served: {json.dumps(seen)}", flush=True)


def readfile(*paths):
    for path in paths:
        try:
            with open(path, "rb") as file:
                print(f"read {path}: {len(file.read())} bytes")
        except OSError as error:
            print(f"cannot read {path}: {type(error).__name__}")


COMMANDS = {"urlopen": urlopen, "https": https, "info": info, "starttls": starttls,
            "serve": serve, "readfile": readfile}

if __name__ == "__main__":
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except Exception as error:  # noqa: BLE001 - the test reads the class and message
        print(describe(error), flush=True)
        sys.exit(1)
