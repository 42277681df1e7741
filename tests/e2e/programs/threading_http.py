"""http.server's ThreadingHTTPServer (what `python -m http.server` runs)
with a handler of its own: python threading_http.py HOST PORT."""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


with ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Hello) as httpd:
    print("serving on", httpd.server_address[1], flush=True)
    httpd.serve_forever()
