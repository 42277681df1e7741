"""HTTP/1.1 server: static files from a pre-opened directory, a small JSON
API, many keep-alive connections at once from one instance.

    http [HOST:PORT] [--root DIR] [--max-requests N]

Serves the first pre-opened TCP listener (or listens on HOST:PORT through
the TCP capability). Files come from ``--root`` (default ``/www``): the
guest path of a directory the operator pre-opened, e.g.
``capsock run --tcplisten 127.0.0.1:8080 --dir ./site::/www build/http.wasm``.

Routes:

- ``GET|HEAD /PATH`` -- the file ``ROOT/PATH`` (``index.html`` for a
  directory), Content-Type by extension; 404 when missing; 403 for a path
  with a ``..`` segment (refused before touching the filesystem, and WASI
  would refuse to leave the pre-opened directory anyway).
- ``GET /api/instance`` -- JSON naming the instance that answered
  (``CAPSOCK_INSTANCE`` from ``capsock serve``)::

      {"instance": "1", "method": "GET", "path": "/api/instance", "requests": 7}

- ``POST /api/echo`` -- the posted JSON document back (400 if it is not
  JSON); ``GET /api/echo?a=1`` -- the query as a JSON object.
- A known path with the wrong method gets 405 with ``Allow``; a malformed
  request 400 and the connection closed.

Connections are tasks of `capsock_guest.Loop`. When the host shuts the
listener down (``capsock serve`` got SIGTERM) the server stops accepting,
answers requests already in flight, closes idle keep-alive connections,
and exits 0.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from urllib.parse import parse_qsl, unquote, urlsplit

import capsock_guest as cg

MAX_HEADER = 16 * 1024
MAX_BODY = 1 << 20
FILE_CHUNK = 256 * 1024
#: Read in main(), not at import: componentize-py runs module top level at
#: build time (a snapshot), when the runtime environment does not exist yet.
INSTANCE = "0"

#: By extension, not `mimetypes`: that module reads the system's mime.types
#: files, which a sandboxed guest does not have.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
    ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8", ".xml": "application/xml",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".ico": "image/x-icon", ".wasm": "application/wasm", ".pdf": "application/pdf",
    ".zip": "application/zip", ".gz": "application/gzip", ".mp4": "video/mp4",
    ".woff": "font/woff", ".woff2": "font/woff2",
}
REASONS = {
    200: "OK", 301: "Moved Permanently", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 505: "HTTP Version Not Supported",
}


class BadRequest(Exception):
    """The request cannot be parsed: answer `status` and close."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


class Request:
    def __init__(self, method: str, target: str, version: str,
                 headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers; raises `BadRequest` for anything malformed
    (a lenient parser that guesses invites request smuggling)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "non-ASCII request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts):
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not method.isalpha() or not method.isupper():
        raise BadRequest(400, "malformed method")
    if not version.startswith("HTTP/1.") or version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest(505 if version.startswith("HTTP/") else 400, "unsupported version")
    if not (target.startswith("/") or target == "*"):
        raise BadRequest(400, "the target must be an absolute path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise BadRequest(400, f"malformed header line {line!r}")
        key = name.lower()
        if key in headers and key in ("content-length", "host", "transfer-encoding"):
            raise BadRequest(400, f"repeated {name} header")
        headers[key] = value.strip()
    if version == "HTTP/1.1" and "host" not in headers:
        raise BadRequest(400, "HTTP/1.1 request without Host")
    return method, target, version, headers


def body_length(headers: dict[str, str]) -> int:
    if "transfer-encoding" in headers:
        raise BadRequest(501, "Transfer-Encoding is not supported; send Content-Length")
    text = headers.get("content-length", "0")
    if not text.isdigit():
        raise BadRequest(400, "bad Content-Length")
    length = int(text)
    if length > MAX_BODY:
        raise BadRequest(413, "body too large")
    return length


def response(status: int, body: bytes = b"", content_type: str | None = None, *,
             keep_alive: bool = True, extra: dict[str, str] | None = None,
             length: int | None = None) -> bytes:
    """The head (and body) of a response; `length` overrides the body's
    length for HEAD, whose body is not sent but whose length is."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
             f"Content-Length: {len(body) if length is None else length}",
             "Server: capsock-http"]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    for name, value in (extra or {}).items():
        lines.append(f"{name}: {value}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_body(value: object) -> bytes:
    return json.dumps(value).encode() + b"\n"


def error_response(status: int, why: str, keep_alive: bool = True,
                   extra: dict[str, str] | None = None) -> bytes:
    return response(status, json_body({"error": why, "status": status}),
                    "application/json", keep_alive=keep_alive, extra=extra)


def safe_path(root: str, target_path: str) -> str | None:
    """The filesystem path for a URL path under `root`, or None when it
    would leave it: percent-decoded, then any ``..`` segment (or NUL, or a
    backslash a Windows-minded client may mean as a separator) is refused."""
    path = unquote(target_path, errors="strict")
    if "\0" in path or "\\" in path:
        return None
    segments = [s for s in path.split("/") if s not in ("", ".")]
    if any(s == ".." for s in segments):
        return None
    return "/".join([root.rstrip("/")] + segments) if segments else root


class Server:
    def __init__(self, loop: cg.Loop, root: str, max_requests: int | None) -> None:
        self.loop = loop
        self.root = root
        self.max_requests = max_requests
        self.requests = 0
        self.idle: set[cg.TcpStream] = set()
        self.draining = False

    # -- routes ----------------------------------------------------------------
    def api(self, request: Request, path: str, query: str) -> bytes:
        keep = request.keep_alive
        if path == "/api/instance":
            if request.method not in ("GET", "HEAD"):
                return error_response(405, "use GET", keep, {"Allow": "GET, HEAD"})
            body = json_body({"instance": INSTANCE, "method": request.method,
                              "path": request.target, "requests": self.requests})
            return self.maybe_head(request, response(200, body, "application/json",
                                                     keep_alive=keep))
        if path == "/api/echo":
            if request.method == "POST":
                try:
                    document = json.loads(request.body)
                except (ValueError, UnicodeDecodeError) as error:
                    return error_response(400, f"invalid JSON: {error}", keep)
                return response(200, json_body(document), "application/json",
                                keep_alive=keep)
            if request.method in ("GET", "HEAD"):
                body = json_body(dict(parse_qsl(query, keep_blank_values=True)))
                return self.maybe_head(request, response(200, body, "application/json",
                                                         keep_alive=keep))
            return error_response(405, "use GET or POST", keep, {"Allow": "GET, HEAD, POST"})
        return error_response(404, "no such API", keep)

    @staticmethod
    def maybe_head(request: Request, full: bytes) -> bytes:
        """For HEAD: the same head, no body (Content-Length stays)."""
        if request.method != "HEAD":
            return full
        return full.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"

    async def static(self, conn: cg.TcpStream, request: Request, path: str) -> None:
        keep = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            await self.loop.sendall(conn, error_response(405, "static files: GET or HEAD",
                                                         keep, {"Allow": "GET, HEAD"}))
            return
        try:
            fs_path = safe_path(self.root, path)
        except UnicodeDecodeError:
            fs_path = None
        if fs_path is None:
            await self.loop.sendall(conn, error_response(403, "path not allowed", keep))
            return
        try:
            info = os.stat(fs_path)
            if stat.S_ISDIR(info.st_mode):
                if not path.endswith("/"):
                    await self.loop.sendall(conn, response(
                        301, b"", keep_alive=keep, extra={"Location": path + "/"}))
                    return
                fs_path = fs_path.rstrip("/") + "/index.html"
                info = os.stat(fs_path)
            if not stat.S_ISREG(info.st_mode):
                raise FileNotFoundError(fs_path)
            handle = open(fs_path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            await self.loop.sendall(conn, error_response(404, "not found", keep))
            return
        except PermissionError:
            await self.loop.sendall(conn, error_response(403, "not readable", keep))
            return
        with handle:
            ext = os.path.splitext(fs_path)[1].lower()
            ctype = CONTENT_TYPES.get(ext, "application/octet-stream")
            size = os.fstat(handle.fileno()).st_size
            if request.method == "HEAD" or size <= FILE_CHUNK:
                body = b"" if request.method == "HEAD" else handle.read()
                await self.loop.sendall(conn, response(200, body, ctype, keep_alive=keep,
                                                       length=size))
                return
            await self.loop.sendall(conn, response(200, b"", ctype, keep_alive=keep,
                                                   length=size))
            while chunk := handle.read(FILE_CHUNK):
                await self.loop.sendall(conn, chunk)

    async def answer(self, conn: cg.TcpStream, request: Request) -> None:
        self.requests += 1
        if request.target == "*":
            await self.loop.sendall(conn, error_response(400, "no such resource",
                                                         request.keep_alive))
            return
        parts = urlsplit(request.target)
        if parts.path == "/api" or parts.path.startswith("/api/"):
            await self.loop.sendall(conn, self.api(request, parts.path, parts.query))
        else:
            await self.static(conn, request, parts.path)

    # -- connections -----------------------------------------------------------
    async def connection(self, conn: cg.TcpStream) -> None:
        buffer = b""
        try:
            while not self.draining:
                self.idle.add(conn)
                while b"\r\n\r\n" not in buffer:
                    if len(buffer) > MAX_HEADER:
                        await self.loop.sendall(conn, error_response(
                            431, "request head too large", keep_alive=False))
                        return
                    chunk = await self.loop.recv(conn, 65536)
                    if not chunk:
                        return
                    self.idle.discard(conn)
                    buffer += chunk
                self.idle.discard(conn)
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                try:
                    method, target, version, headers = parse_head(head)
                    length = body_length(headers)
                except BadRequest as error:
                    await self.loop.sendall(conn, error_response(error.status, str(error),
                                                                 keep_alive=False))
                    return
                while len(buffer) < length:
                    chunk = await self.loop.recv(conn, 65536)
                    if not chunk:
                        return
                    buffer += chunk
                body, buffer = buffer[:length], buffer[length:]
                request = Request(method, target, version, headers, body)
                await self.answer(conn, request)
                if not request.keep_alive:
                    return
                if self.max_requests is not None and self.requests >= self.max_requests:
                    self.loop.stop()
                    return
        except cg.NetError:
            return
        finally:
            self.idle.discard(conn)
            self.loop.close(conn)

    async def accept_all(self, listener: cg.TcpListener) -> None:
        async for conn, _peer in self.loop.accept_forever(listener):
            self.loop.spawn(self.connection(conn))
        # the listener is gone: finish in-flight requests, drop idle ones
        self.draining = True
        for conn in list(self.idle):
            try:
                conn.shutdown("receive")
            except cg.NetError:
                pass


USAGE = "usage: http [HOST:PORT] [--root DIR] [--max-requests N]"


def main(argv: list[str]) -> int:
    global INSTANCE
    INSTANCE = os.environ.get("CAPSOCK_INSTANCE", "0")
    address: str | None = None
    max_requests: int | None = None
    root = "/www"
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--max-requests" and rest and rest[0].isdigit():
            max_requests = int(rest.pop(0))
        elif arg == "--root" and rest:
            root = rest.pop(0)
        elif not arg.startswith("-") and address is None:
            address = arg
        else:
            print(USAGE, file=sys.stderr)
            return 2
    if address:
        listener = cg.listen(cg.parse_address(address))
    else:
        listeners = cg.preopened_tcp_listeners()
        if not listeners:
            print("http: no address given and no pre-opened TCP listener", file=sys.stderr)
            return 1
        listener = listeners[0]
    if not os.path.isdir(root):
        print(f"http: {root} is not a pre-opened directory (--dir HOSTDIR::{root}); "
              "serving the API only", file=sys.stderr, flush=True)
    print(f"listening on {cg.format_address(listener.local_address())} "
          f"(instance {INSTANCE})", flush=True)
    loop = cg.Loop()
    server = Server(loop, root, max_requests)
    with listener:
        loop.spawn(server.accept_all(listener))
        loop.run()
    print(f"instance {INSTANCE} served {server.requests} requests", flush=True)
    return 0


Run = cg.run_main(main)
