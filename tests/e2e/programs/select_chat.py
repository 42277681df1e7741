"""The select.select chat server of the socket tutorials: every line a
client sends goes to every other client. python select_chat.py HOST PORT."""
import select
import socket
import sys

HOST, PORT = sys.argv[1], int(sys.argv[2])

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((HOST, PORT))
server.listen(5)
print("chat server on", server.getsockname()[1], flush=True)
sockets = [server]

while True:
    readable, _, _ = select.select(sockets, [], [])
    for sock in readable:
        if sock is server:
            conn, addr = server.accept()
            sockets.append(conn)
            print("joined", len(sockets) - 1, flush=True)
        else:
            data = sock.recv(1024)
            if data:
                for other in sockets:
                    if other is not server and other is not sock:
                        other.sendall(data)
            else:
                sockets.remove(sock)
                sock.close()
                print("left", len(sockets) - 1, flush=True)
