"""Standard-library networking code run unmodified on capsock's BSD layer.

A plain script (no capsock imports): every mode is written the way Python
programmers write it against `socket`, `selectors`, `http.server` and
`http.client`.

    bsdprobe try KIND [ARG]    run one error snippet, print
                               "KIND: ExceptionClass errno=NAME [socket.timeout]"
                               (or "KIND: ok ..."). KINDs: refused HOST:PORT,
                               denied HOST:PORT, timeout HOST:PORT (a silent
                               server), wouldblock HOST:PORT, noname NAME,
                               denied-name NAME, bind-denied HOST:PORT,
                               connect-ex HOST:PORT, options HOST:PORT,
                               keepidle SECONDS (TCP_KEEPIDLE set and read back),
                               gai NAME (local getaddrinfo answers),
                               udp HOST:PORT (an echo peer: sendto/recvfrom_into,
                               then connect/send/recv)
    bsdprobe http-serve HOST:PORT N   http.server.HTTPServer with a
                               BaseHTTPRequestHandler subclass; serves N
                               requests (prints "listening on HOST:PORT")
    bsdprobe http-get URL      http.client GET, prints "status N" and the body
    bsdprobe http-post URL BODY  http.client POST
    bsdprobe select HOST:PORT N  the `selectors` docs' echo server (non-blocking
                               accept/read on DefaultSelector), N connections
    bsdprobe info              which modules `socket`/`selectors` are
"""

import errno
import http.client
import http.server
import json
import selectors
import socket
import sys
import urllib.parse


def describe(exc):
    name = errno.errorcode.get(exc.errno, exc.errno) if isinstance(exc.errno, int) else None
    if isinstance(exc, socket.gaierror):
        name = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN",
                socket.EAI_FAIL: "EAI_FAIL"}.get(exc.errno, exc.errno)
    extra = []
    if isinstance(exc, socket.timeout):
        extra.append("socket.timeout")
    if isinstance(exc, socket.gaierror):
        extra.append("socket.gaierror")
    if isinstance(exc, socket.error):
        extra.append("socket.error")
    return f"{type(exc).__name__} errno={name} {' '.join(extra)}".rstrip()


def split(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def try_kind(kind, arg):
    if kind in ("refused", "denied"):
        with socket.create_connection(split(arg), timeout=5) as s:
            s.sendall(b"hello")
        return "connected"
    if kind == "timeout":
        with socket.create_connection(split(arg)) as s:
            s.settimeout(0.3)
            s.recv(1024)
        return "received"
    if kind == "wouldblock":
        with socket.create_connection(split(arg)) as s:
            s.setblocking(False)
            s.recv(1024)
        return "received"
    if kind in ("noname", "denied-name"):
        infos = socket.getaddrinfo(arg, 80, type=socket.SOCK_STREAM)
        return " ".join(sorted({info[4][0] for info in infos}))
    if kind == "bind-denied":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(split(arg))
            s.listen()
        finally:
            s.close()
        return "bound"
    if kind == "connect-ex":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with s:
            return f"connect_ex={errno.errorcode.get(s.connect_ex(split(arg)), 0)}"
    if kind == "gai":
        # IP literals and None need no resolver capability at all.
        passive = socket.getaddrinfo(None, 8080, socket.AF_INET, socket.SOCK_STREAM,
                                     flags=socket.AI_PASSIVE)
        loop = socket.getaddrinfo(None, "http", socket.AF_INET6, socket.SOCK_STREAM)
        v6 = socket.getaddrinfo("::1", 53, type=socket.SOCK_DGRAM)
        both = socket.getaddrinfo("127.0.0.1", 7)
        try:
            socket.getaddrinfo(arg, 80, flags=socket.AI_NUMERICHOST)
            numeric = "resolved"
        except socket.gaierror as e:
            numeric = "EAI_NONAME" if e.errno == socket.EAI_NONAME else str(e.errno)
        return (f"passive={passive[0][4]} loop={loop[0][4]} v6={v6} "
                f"kinds={[(f.name, k.name, p) for f, k, p, _, _ in both]} "
                f"byname={socket.gethostbyname('10.1.2.3')} numeric={numeric}")
    if kind == "udp":
        host, port = split(arg)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(b"ping", (host, port))
            buf = bytearray(64)
            n, sender = s.recvfrom_into(buf)
            s.connect((host, port))
            s.send(b"pong")
            data = s.recv(64)
            return f"{bytes(buf[:n]).decode()} {data.decode()} from {sender[0]}:{sender[1]}"
    if kind == "keepidle":  # ARG: seconds; on a fresh TCP socket (no peer needed)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            before = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, int(arg))
            got = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
            try:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 0)
                zero = "accepted"
            except OSError as e:
                zero = errno.errorcode.get(e.errno, e.errno)
            return f"default={before} set={arg} got={got} zero={zero}"
    if kind == "options":
        with socket.create_connection(split(arg), timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 33)
            values = [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                      s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                      s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL),
                      s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)]
            ok = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) > 0
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST
                             if hasattr(socket, "SO_BROADCAST") else 6, 1)
                unknown = "accepted"
            except OSError as e:
                unknown = errno.errorcode.get(e.errno, e.errno)
            peer = s.getpeername()
            fd = s.fileno()
            s.settimeout(2.5)
            return (f"options={values} rcvbuf_ok={ok} unknown={unknown} "
                    f"peer={peer[0]} fileno_int={isinstance(fd, int) and fd >= 0} "
                    f"timeout={s.gettimeout()}")
    raise SystemExit(f"unknown kind {kind}")


class Handler(http.server.BaseHTTPRequestHandler):
    """An ordinary http.server handler: nothing capsock-specific."""

    protocol_version = "HTTP/1.1"

    def _reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._reply(200, {"path": self.path, "client": self.client_address[0],
                          "agent": self.headers.get("User-Agent", "")})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        self._reply(201, {"received": data.decode(), "length": length})


def http_serve(address, count):
    with http.server.HTTPServer(address, Handler) as server:
        host, port = server.server_address[:2]
        print(f"listening on {host}:{port}", flush=True)
        for _ in range(count):
            server.handle_request()


def http_request(method, url, body=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, parts.path or "/", body=body,
                     headers={"Content-Type": "text/plain"} if body else {})
        response = conn.getresponse()
        data = response.read()
        print(f"status {response.status} {response.reason}", flush=True)
        print(f"header x-native {response.getheader('X-Native')}", flush=True)
        print(data.decode(), flush=True)
    finally:
        conn.close()


def select_echo(address, count):
    # The `selectors` module documentation's example, bounded.
    sel = selectors.DefaultSelector()
    served = 0

    def accept(sock, mask):
        conn, addr = sock.accept()
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, read)

    def read(conn, mask):
        nonlocal served
        data = conn.recv(1000)
        if data:
            conn.send(data)
        else:
            sel.unregister(conn)
            conn.close()
            served += 1

    sock = socket.socket()
    sock.bind(address)
    sock.listen(100)
    sock.setblocking(False)
    sel.register(sock, selectors.EVENT_READ, accept)
    print(f"listening on {sock.getsockname()[0]}:{sock.getsockname()[1]}", flush=True)
    while served < count:
        events = sel.select(timeout=10)
        if not events:
            print("select timed out", flush=True)
            break
        for key, mask in events:
            key.data(key.fileobj, mask)
    print(f"served {served} with {type(sel).__name__}", flush=True)
    sel.close()
    sock.close()


def main(argv):
    mode = argv[0] if argv else "info"
    if mode == "try":
        kind, arg = argv[1], argv[2] if len(argv) > 2 else ""
        try:
            print(f"{kind}: ok {try_kind(kind, arg)}", flush=True)
        except OSError as exc:
            print(f"{kind}: {describe(exc)}", flush=True)
    elif mode == "http-serve":
        http_serve(split(argv[1]), int(argv[2]))
    elif mode == "http-get":
        http_request("GET", argv[1])
    elif mode == "http-post":
        http_request("POST", argv[1], argv[2].encode())
    elif mode == "select":
        select_echo(split(argv[1]), int(argv[2]))
    else:
        print(f"socket {socket.__name__} selectors {selectors.__name__} "
              f"http.client.socket {http.client.socket.__name__}", flush=True)


main(sys.argv[1:])
