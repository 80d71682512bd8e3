"""An echo server for a Unix datagram socket in the style of many written
in C: recvfrom(2) and sendto(2) on a struct sockaddr_un whose sun_path is
read as a NUL-terminated string.

An autobound client address is abstract: its sun_path starts with a NUL
byte, so this server sees an empty name, its sendto(2) fails, and the
client hears nothing. A client bound to a path gets its reply.

Usage: cstring_server.py PATH. Prints "ready" once bound; logs each
failed reply on stderr; runs until killed.
"""

import ctypes
import os
import socket
import sys


class SockaddrUn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("path", ctypes.c_char * 108)]


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sys.argv[1])
    print("ready", flush=True)
    buf = ctypes.create_string_buffer(65536)
    while True:
        peer = SockaddrUn()
        peer_len = ctypes.c_uint(ctypes.sizeof(peer))
        n = libc.recvfrom(sock.fileno(), buf, len(buf), 0,
                          ctypes.byref(peer), ctypes.byref(peer_len))
        if n < 0:
            return
        reply = buf.raw[:n][::-1]
        # ctypes reads a c_char array up to its first NUL: the C view.
        name = peer.path
        target = SockaddrUn(socket.AF_UNIX, name)
        target_len = ctypes.sizeof(ctypes.c_ushort) + len(name) + 1
        if libc.sendto(sock.fileno(), reply, n, 0,
                       ctypes.byref(target), target_len) < 0:
            err = os.strerror(ctypes.get_errno())
            print(f"cannot reply to {name!r}: {err}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
