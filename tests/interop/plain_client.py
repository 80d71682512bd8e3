"""A datagram client with nothing but Python's socket module, as a user
might write one: send one message, print the reply and where it came from.

Usage: plain_client.py unix PATH MESSAGE | plain_client.py udp HOST PORT MESSAGE
"""

import socket
import sys


def main():
    if sys.argv[1] == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind("")  # an empty name: the kernel picks an abstract one
        target, message = sys.argv[2], sys.argv[3]
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target, message = (sys.argv[2], int(sys.argv[3])), sys.argv[4]
    sock.settimeout(10)
    sock.sendto(message.encode(), target)
    data, source = sock.recvfrom(65536)
    print(data.decode())
    print(f"from {source!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
