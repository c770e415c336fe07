#!/bin/bash
# udp_limits.test.sh - both modes take the same UDP datagrams as a DNS server's UDP socket would:
# payloads up to 4096 octets (the UDP listener's buffer in tproxy mode; checked the same way on
# queued packets in nfqueue mode), larger ones dropped and counted; and in nfqueue mode a
# datagram whose UDP checksum does not verify is dropped and counted, as the kernel's UDP
# stack drops it in tproxy mode (a checksum that offload has yet to complete is not checked:
# the host-scope and veth queries of the other tests have those).
#
#   client --- gw-c [gateway: dotgw --mode nfqueue | tproxy] gw-u --- upstream (DoT @853)
#   python3: UDP queries of 4096 and 4097 octets; hand-made IPv4 and IPv6 packets through a raw
#   socket, with the right and a wrong UDP checksum
#
# Usage: udp_limits.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3
lab_require_dotgw "${1:-}"
lab_setup

cat >"$LAB_DIR/udpq.py" <<'PY'
# udpq.py size SERVER N: a query for www.example.test/A of exactly N octets (EDNS padding fills
# it) from an ordinary UDP socket.
# udpq.py raw SRC SERVER good|bad: the same query (N = 49) in an IP packet built here and sent
# through a raw socket, with the right UDP checksum or a wrong one; the answer is awaited on a
# UDP socket bound to SRC and the packet's source port.
# Prints "answer RCODE ANCOUNT" or "none" (nothing within 2 s).
import os, socket, struct, sys

def query(n):
    qname = b"".join(bytes([len(l)]) + l for l in b"www.example.test".split(b".")) + b"\0"
    m = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 1) + qname + struct.pack(">HH", 1, 1)
    pad = n - len(m) - 11 - 4
    assert pad >= 0
    return m + b"\0" + struct.pack(">HHIH", 41, 4096, 0, 4 + pad) + struct.pack(">HH", 12, pad) + bytes(pad)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def wait(s):
    s.settimeout(2)
    try:
        a = s.recv(65535)
    except socket.timeout:
        return "none"
    return "answer %d %d" % (a[3] & 0xf, struct.unpack(">H", a[6:8])[0])

if sys.argv[1] == "size":
    server, n = sys.argv[2], int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((server, 53))
    s.send(query(n))
    print(wait(s))
else:
    src, server, kind = sys.argv[2], sys.argv[3], sys.argv[4]
    v6 = ":" in server
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    r = socket.socket(fam, socket.SOCK_DGRAM)
    r.bind((src, 0))
    sport = r.getsockname()[1]
    q = query(49)
    udp = struct.pack("!HHHH", sport, 53, 8 + len(q), 0) + q
    s_, d_ = socket.inet_pton(fam, src), socket.inet_pton(fam, server)
    if v6:
        pseudo = s_ + d_ + struct.pack("!IxxxB", len(udp), 17)
    else:
        pseudo = s_ + d_ + struct.pack("!BBH", 0, 17, len(udp))
    c = csum(pseudo + udp) or 0xffff
    if kind == "bad":
        c ^= 0x0101
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    if v6:
        ip = struct.pack("!IHBB", 0x60000000, len(udp), 17, 64) + s_ + d_
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0) + s_ + d_
    w = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
    w.sendto(ip + udp, (server, 0))
    print(wait(r))
PY

# size MODE FAMILY SERVER
size_checks()
{
	local mode=$1 server=$2
	lab_run "$NS_CLIENT" python3 "$LAB_DIR/udpq.py" size "$server" 4096
	lab_check_eq "$mode: a 4096-octet query @$server is answered" "answer 0 1" "$LAB_OUT"
	lab_run "$NS_CLIENT" python3 "$LAB_DIR/udpq.py" size "$server" 4097
	lab_check_eq "$mode: a 4097-octet query @$server is dropped" "none" "$LAB_OUT"
}

# raw_checks MODE: hand-made packets, IPv4 and IPv6, right and wrong UDP checksum
raw_checks()
{
	local mode=$1 server src
	for server in "$LAB_DECOY4" "$LAB_DECOY6"; do
		src=$LAB_CLIENT4
		[ "$server" = "$LAB_DECOY6" ] && src=$LAB_CLIENT6
		lab_run "$NS_CLIENT" python3 "$LAB_DIR/udpq.py" raw "$src" "$server" good
		lab_check_eq "$mode: a raw packet @$server with the right UDP checksum is answered" \
			"answer 0 1" "$LAB_OUT"
		lab_run "$NS_CLIENT" python3 "$LAB_DIR/udpq.py" raw "$src" "$server" bad
		lab_check_eq "$mode: a raw packet @$server with a wrong UDP checksum is dropped" \
			"none" "$LAB_OUT"
	done
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode nfqueue --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
size_checks nfqueue "$LAB_DECOY4"
size_checks nfqueue "$LAB_DECOY6"
raw_checks nfqueue
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "nfqueue: dotgw exits 0" 0 "$?"
lab_check_eq "nfqueue: the two bad checksums counted" 2 "$(lab_dotgw_stat bad_checksum)"
lab_check_eq "nfqueue: the two oversized queries counted malformed" 2 "$(lab_dotgw_stat malformed)"
lab_check_eq "nfqueue: the four others were answered (upstream or cache)" 4 \
	"$(($(lab_dotgw_stat answered) + $(lab_dotgw_stat cache_hits)))"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode tproxy --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
size_checks tproxy "$LAB_DECOY4"
size_checks tproxy "$LAB_DECOY6"
raw_checks tproxy
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "tproxy: dotgw exits 0" 0 "$?"
lab_check_eq "tproxy: the two oversized queries counted malformed" 2 "$(lab_dotgw_stat malformed)"
lab_finish
