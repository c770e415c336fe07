#!/bin/bash
# bad_input.test.sh - junk sent to port 53 is counted as malformed and dropped or refused; the
# daemon survives, keeps answering, and none of it is passed on to the original destination.
#
#   client --- gw-c [gateway: dotgw --scope both] gw-u --- upstream 203.0.113.2 (DoT @853)
#   (sends junk to                                gw-d --- decoy 192.0.2.53 (must see nothing)
#    192.0.2.53:53, 2001:db8:53::53:53)
#
# Junk, to each address: UDP 3 octets; a 12-octet header with QR set (a response, not a query);
# a header claiming 5 questions and nothing after it; 600 pseudo-random octets shaped as a query
# whose first name is a compression pointer far beyond the message; TCP: a length prefix of 2
# and 2 octets; a length prefix of 0.
#
# Usage: bad_input.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"

# The junk goes out with python3 when it is there, else with bash's /dev/udp and /dev/tcp
# (BAD_INPUT_SENDER=python3|bash chooses).
SENDER=${BAD_INPUT_SENDER:-}
if [ -z "$SENDER" ]; then
	if command -v python3 >/dev/null 2>&1 && python3 -c 'import socket' 2>/dev/null; then
		SENDER=python3
	elif command -v head >/dev/null 2>&1 && command -v cat >/dev/null 2>&1; then
		SENDER=bash
	else
		lab_skip "needs python3, or head and cat for bash's /dev/udp"
	fi
fi
JUNK_PER_ADDRESS=6

lab_setup

cat >"$LAB_DIR/junk.py" <<'EOF'
# junk.py ADDRESS: send the junk messages to ADDRESS port 53, each once.
import random
import socket
import struct
import sys

addr = sys.argv[1]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
rnd = random.Random(53)
body = bytes(rnd.getrandbits(8) for _ in range(600 - 12))
udp = [
    b"\x12\x34\x01",
    struct.pack("!6H", 0x1234, 0x8180, 1, 0, 0, 0),
    struct.pack("!6H", 0x1235, 0x0100, 5, 0, 0, 0),
    struct.pack("!6H", 0x1236, 0x0100, 1, 0, 0, 0) + b"\xff" + body[1:],
]
tcp = [b"\x00\x02\xff\xff", b"\x00\x00"]

for msg in udp:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    s.sendto(msg, (addr, 53))
    try:
        s.recv(4096)  # a FORMERR is fine, so is silence
    except OSError:
        pass
    s.close()
for msg in tcp:
    s = socket.create_connection((addr, 53), timeout=2)
    s.sendall(msg)
    try:
        while s.recv(4096):  # until the daemon closes the connection, or 2 s
            pass
    except OSError:
        pass
    s.close()
print("sent %d UDP and %d TCP messages to %s" % (len(udp), len(tcp), addr))
EOF

cat >"$LAB_DIR/junk.sh" <<'EOF'
# junk.sh ADDRESS DIR: the same junk as junk.py, with bash's /dev/udp and /dev/tcp.
addr=$1 dir=$2
printf '\x12\x34\x01' >"$dir/u1"
printf '\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00' >"$dir/u2"
printf '\x12\x35\x01\x00\x00\x05\x00\x00\x00\x00\x00\x00' >"$dir/u3"
{
	printf '\x12\x36\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff'
	head -c 587 /dev/urandom
} >"$dir/u4"
for f in u1 u2 u3 u4; do
	# One write, one datagram.
	exec 3<>"/dev/udp/$addr/53" || exit 1
	cat "$dir/$f" >&3
	exec 3>&-
done
for m in '\x00\x02\xff\xff' '\x00\x00'; do
	exec 3<>"/dev/tcp/$addr/53" || exit 1
	printf "$m" >&3
	timeout 2 cat <&3 >/dev/null
	exec 3>&-
done
echo "sent 4 UDP and 2 TCP messages to $addr"
EOF

send_junk()
{
	if [ "$SENDER" = python3 ]; then
		lab_run "$NS_CLIENT" python3 "$LAB_DIR/junk.py" "$1"
	else
		lab_run "$NS_CLIENT" bash "$LAB_DIR/junk.sh" "$1" "$LAB_DIR"
	fi
	lab_check_eq "junk sent to $1 with $SENDER" 0 "$LAB_RC"
}

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" || lab_finish

sent=0
for server in "$LAB_DECOY4" "$LAB_DECOY6"; do
	send_junk "$server"
	sent=$((sent + JUNK_PER_ADDRESS))
	lab_ok "dotgw is still running after the junk to $server" lab_pid_alive "$DOTGW_PID"
	lab_dig "$NS_CLIENT" @"$server" www.example.test A
	lab_check_eq "a normal query to $server is answered" "NOERROR $LAB_UP_A from $server#53 (UDP)" \
		"$(lab_dig_summary A)"
	lab_dig "$NS_CLIENT" @"$server" www.example.test A +tcp
	lab_check_eq "a normal TCP query to $server is answered" \
		"NOERROR $LAB_UP_A from $server#53 (TCP)" "$(lab_dig_summary A)"
done

lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_check_match "a stats: line was logged" 'stats:.*malformed=[0-9]+' \
	"$(grep 'stats:' "$DOTGW_LOG")"
lab_check_num "stats: malformed >= $sent (the junk sent)" "$(lab_dotgw_stat malformed)" -ge "$sent"

lab_finish
