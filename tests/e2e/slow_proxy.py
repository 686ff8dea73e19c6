#!/usr/bin/env python3
"""slow_proxy.py LISTEN UPSTREAM BYTES_PER_SECOND: a TCP forwarder that passes what clients send
at most at the given rate (answers go back unslowed). The e2e tier puts it in front of the
registry to keep a push running for seconds, long enough to act while it runs."""
import socket
import sys
import threading
import time


def pump(src, dst, rate):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
            if rate:
                time.sleep(len(data) / rate)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def main():
    listen, upstream, rate = split(sys.argv[1]), split(sys.argv[2]), int(sys.argv[3])
    server = socket.create_server(listen)
    while True:
        client, _ = server.accept()
        try:
            up = socket.create_connection(upstream)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, up, rate), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, 0), daemon=True).start()


if __name__ == "__main__":
    main()
