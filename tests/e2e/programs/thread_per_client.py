"""A thread-per-client echo server: python thread_per_client.py HOST PORT."""
import socket
import sys
import threading


def handle(conn, addr):
    with conn:
        while data := conn.recv(1024):
            conn.sendall(data)
    print("done with", addr[0], flush=True)


with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((sys.argv[1], int(sys.argv[2])))
    server.listen()
    print("listening on", server.getsockname()[1], flush=True)
    while True:
        conn, addr = server.accept()
        threading.Thread(target=handle, args=(conn, addr)).start()
