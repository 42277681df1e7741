"""http.server on 127.0.0.1:PORT answering GET with the path it was asked."""

import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"you asked for {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(sys.argv[1])
server = HTTPServer(("127.0.0.1", port), Handler)
print(f"serving on 127.0.0.1:{port}", flush=True)
server.serve_forever()
