#!/usr/bin/env python3
# tcpcheck.py - TCP and UDP echo servers and clients for the egress tests (egress.test.sh,
# egress_rules.test.sh).
#   tcpcheck.py serve ADDR PORT [ADDR PORT]...  TCP and UDP echo servers (IPv6 ones v6-only),
#       300 s at most
#   tcpcheck.py udp ADDR PORT [SRC]             one datagram, its echo within 1.5 s: "UDP ok"
#       or "FAIL why"
#   tcpcheck.py conn ADDR PORT [SRC] [FLAG]     connect (1.5 s: one SYN, no retry), echo; print
#       "ECHO1 ok retrans N" (N: the kernel's retransmissions, SYN included) or "FAIL why";
#       with FLAG, hold the connection until the file FLAG exists (60 s at most: "ECHO2 FAIL
#       no flag" if it never does), then echo again ("ECHO2 ok")
import os
import socket
import struct
import sys
import threading
import time


def serve(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        threading.Thread(target=lambda c=c: [c.sendall(d) for d in iter(lambda: c.recv(64), b"")],
                         daemon=True).start()


def serve_udp(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(512)
        s.sendto(data, peer)


def udp(addr, port, src):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.5)
    try:
        if src:
            s.bind((src, 0))
        s.sendto(b"u", (addr, port))
        ok = s.recv(16) == b"u"
    except OSError as e:
        print("FAIL", e)
        return 1
    print("UDP", "ok" if ok else "bad")
    return 0


def conn(addr, port, src, flag):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.settimeout(1.5)
    try:
        if src:
            s.bind((src, 0))
        s.connect((addr, port))
        s.sendall(b"x")
        ok = s.recv(1) == b"x"
    except OSError as e:
        print("FAIL", e)
        return 1
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    # struct tcp_info: 8 octets of u8 fields, then u32s; tcpi_total_retrans is the 24th
    print("ECHO1", "ok" if ok else "bad", "retrans", struct.unpack_from("I", info, 100)[0],
          flush=True)
    if flag:
        for _ in range(600):
            if os.path.exists(flag):
                break
            time.sleep(0.1)
        else:
            print("ECHO2 FAIL no flag")
            return 0
        try:
            s.settimeout(2)
            s.sendall(b"y")
            print("ECHO2", "ok" if s.recv(1) == b"y" else "bad")
        except OSError as e:
            print("ECHO2 FAIL", e)
    return 0


if sys.argv[1] == "serve":
    args = sys.argv[2:]
    for i in range(0, len(args), 2):
        threading.Thread(target=serve, args=(args[i], int(args[i + 1])), daemon=True).start()
        threading.Thread(target=serve_udp, args=(args[i], int(args[i + 1])),
                         daemon=True).start()
    threading.Event().wait(300)
elif sys.argv[1] == "udp":
    a = sys.argv[2:] + [""]
    sys.exit(udp(a[0], int(a[1]), a[2]))
else:
    a = sys.argv[2:] + ["", ""]
    sys.exit(conn(a[0], int(a[1]), a[2], a[3]))
