"""A socketserver.ThreadingTCPServer line echo, as the socketserver docs
write one: python threading_tcp_echo.py HOST PORT."""
import socketserver
import sys


class EchoHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


if __name__ == "__main__":
    with socketserver.ThreadingTCPServer((sys.argv[1], int(sys.argv[2])), EchoHandler) as server:
        print("serving on", server.server_address[1], flush=True)
        server.serve_forever()
