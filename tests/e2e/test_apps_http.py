"""The http app driven by curl: static files from a `--dir` pre-open, the
JSON API, traversal refused, malformed requests, keep-alive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .apps import run_tool, start_app, tool
from .helpers import run_capsock

SECRET = b"the host's secret, outside the pre-opened directory\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory and, next to it (outside), a secret file."""
    base = tmp_path_factory.mktemp("http")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><h1>capsock</h1>\n")
    (root / "style.css").write_text("h1 { color: teal }\n")
    (root / "data.json").write_text('{"k": [1, 2, 3]}\n')
    (root / "docs" / "index.html").write_text("<p>docs</p>\n")
    (root / "space name.txt").write_text("spaced\n")
    (root / "blob.bin").write_bytes(os.urandom(700_000))  # > one 256 KiB chunk
    (root / "escape.txt").symlink_to(base / "secret.txt")
    return root


@pytest.fixture(scope="module")
def http(guests: dict[str, Path], site: Path) -> Iterator[str]:
    app, port = start_app(guests["http"], "--tcplisten", "127.0.0.1:0",
                          "--dir", f"{site}::/www")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.kill()


def curl(*args: str) -> tuple[int, str, bytes]:
    """``(status, content type, body)`` of one curl request; the body as
    bytes (files are binary), the status and type from curl's ``-w``."""
    done = subprocess.run([tool("curl"), "-sS", "-o", "-", "-w",
                           "\n%{http_code} %{content_type}", *args],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    body, _, trailer = done.stdout.rpartition(b"\n")
    status, _, ctype = trailer.decode().partition(" ")
    return int(status), ctype, body


def test_static_files_are_byte_for_byte(http: str, site: Path) -> None:
    for name in ("index.html", "style.css", "data.json", "blob.bin", "docs/index.html",
                 "space%20name.txt"):
        status, _, body = curl(f"{http}/{name}")
        assert status == 200, name
        assert body == (site / name.replace("%20", " ")).read_bytes(), name


def test_directory_serves_index_and_content_types(http: str, site: Path) -> None:
    status, ctype, body = curl(f"{http}/")
    assert (status, ctype) == (200, "text/html; charset=utf-8")
    assert body == (site / "index.html").read_bytes()
    assert curl(f"{http}/style.css")[:2] == (200, "text/css; charset=utf-8")
    assert curl(f"{http}/data.json")[:2] == (200, "application/json")
    assert curl(f"{http}/blob.bin")[:2] == (200, "application/octet-stream")
    status, _, _ = curl(f"{http}/docs")  # no slash: redirect to the directory
    assert status == 301
    status, _, body = curl("-L", f"{http}/docs")
    assert (status, body) == (200, b"<p>docs</p>\n")


def test_head_has_length_and_no_body(http: str, site: Path) -> None:
    done = run_tool("curl", "-sS", "-I", f"{http}/blob.bin")
    assert done.returncode == 0, done.stderr
    head = done.stdout.lower()
    assert head.startswith("http/1.1 200")
    assert f"content-length: {(site / 'blob.bin').stat().st_size}" in head
    raw = _raw(http, b"HEAD /blob.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1  # no body


def test_missing_file_is_404(http: str) -> None:
    status, ctype, body = curl(f"{http}/nope.html")
    assert status == 404 and ctype == "application/json"
    assert json.loads(body)["status"] == 404


@pytest.mark.parametrize("path", ["/../secret.txt", "/docs/../../secret.txt",
                                  "/%2e%2e/secret.txt", "/docs/%2E%2E/%2e%2e/secret.txt",
                                  "/..%2fsecret.txt"])
def test_traversal_is_refused(http: str, path: str) -> None:
    status, _, body = curl("--path-as-is", f"{http}{path}")
    assert status == 403, path
    assert SECRET not in body


def test_symlink_out_of_the_directory_is_refused_by_wasi(http: str) -> None:
    status, _, body = curl(f"{http}/escape.txt")
    assert status in (403, 404)
    assert SECRET not in body


def test_json_echo_round_trips_posted_json(http: str) -> None:
    document = {"name": "capsock", "list": [1, 2.5, None, True], "nested": {"ü": "ß"}}
    status, ctype, body = curl("-X", "POST", "-H", "Content-Type: application/json",
                               "--data-binary", json.dumps(document), f"{http}/api/echo")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body.decode("utf-8")) == document


def test_json_echo_errors(http: str) -> None:
    status, _, body = curl("-X", "POST", "--data-binary", "{not json", f"{http}/api/echo")
    assert status == 400 and "invalid JSON" in json.loads(body)["error"]
    done = run_tool("curl", "-sS", "-i", "-X", "DELETE", f"{http}/api/echo")
    assert done.stdout.startswith("HTTP/1.1 405")
    assert "Allow: GET, HEAD, POST" in done.stdout
    assert curl("-X", "POST", "-d", "x=1", f"{http}/index.html")[0] == 405
    assert curl(f"{http}/api/nothing")[0] == 404


def test_json_echo_get_returns_the_query(http: str) -> None:
    status, _, body = curl(f"{http}/api/echo?a=1&b=two%20words&c=")
    assert status == 200
    assert json.loads(body) == {"a": "1", "b": "two words", "c": ""}


def test_instance_api(http: str) -> None:
    status, _, body = curl(f"{http}/api/instance")
    reply = json.loads(body)
    assert status == 200 and reply["instance"] == "0" and reply["path"] == "/api/instance"


def test_curl_reuses_one_keep_alive_connection(http: str) -> None:
    done = run_tool("curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
                    "-w", "%{num_connects}\n", f"{http}/", f"{http}/api/instance",
                    f"{http}/style.css")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0", "0"]  # one connection, then reused


def _raw(port_url: str, request: bytes) -> bytes:
    """Send raw bytes; read until the server closes."""
    port = int(port_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        return b"".join(iter(lambda: conn.recv(65536), b""))


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 needs Host
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET relative HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_requests_get_400_and_close(http: str, request_bytes: bytes) -> None:
    reply = _raw(http, request_bytes)  # returns only because the server closed
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert b"Connection: close" in reply


def test_connection_close_and_pipelining(http: str) -> None:
    reply = _raw(http, b"GET /api/echo?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n[1, 2]\n"
                       b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    responses = reply.split(b"HTTP/1.1 200 OK")
    assert len(responses) == 4, reply
    assert b'{"n": "1"}' in responses[1] and b"[1, 2]" in responses[2]
    assert b"Connection: close" in responses[3] and responses[3].endswith(b"teal }\n")


def test_http10_closes_after_one_response(http: str) -> None:
    reply = _raw(http, b"GET /api/instance HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply


def test_missing_dir_exits_2_naming_the_flag(guests: dict[str, Path], tmp_path: Path) -> None:
    done = run_capsock("run", "--dir", f"{tmp_path / 'absent'}::/www", str(guests["http"]))
    assert done.returncode == 2
    assert "--dir" in done.stderr and "absent" in done.stderr
    done = run_capsock("run", "--dir", "::/www", str(guests["http"]))
    assert done.returncode == 2 and "--dir" in done.stderr
