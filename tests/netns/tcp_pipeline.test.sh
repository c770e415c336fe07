#!/bin/bash
# tcp_pipeline.test.sh - a TCP client that keeps 64 large queries pipelined and reads its
# answers slowly but steadily gets every one of them, although far more than dotgw's per-client
# output limit (256 KiB of answers not yet taken) passes through the connection in total: the
# limit counts only what the client has yet to read. A client that stops reading is still cut
# off.
#
#   client --- gw-c [gateway: dotgw --scope gateway] gw-u --- upstream (big.example.test: 40 TXT)
#   python3: 64 queries in flight, 256 in all, reads 1 KiB per millisecond
#
# Usage: tcp_pipeline.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3
lab_require_dotgw "${1:-}"
lab_setup

cat >"$LAB_DIR/pipeline.py" <<'PY'
# pipeline.py SERVER TOTAL WINDOW READ-SIZE [FLAG]: TOTAL queries for big.example.test TXT over
# one TCP connection, WINDOW of them unanswered at any time; reads READ-SIZE octets at a time
# with a 1 ms pause (READ-SIZE 0: reads nothing until the file FLAG exists, 20 s at most). Prints
# "answers N full M" (M: answers with 40 records), then "closed" if the server closed early.
import socket, struct, sys, time

server, total, window, rsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
qname = b"".join(bytes([len(l)]) + l for l in b"big.example.test".split(b".")) + b"\0"

def query(i):
    m = struct.pack(">HHHHHH", i & 0xffff, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 16, 1)
    return struct.pack(">H", len(m)) + m

s = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(10)
s.connect((server, 53))
sent = min(window, total)
s.sendall(b"".join(query(i) for i in range(sent)))
answers = full = 0
buf = b""
closed = False
if rsize == 0:
    for _ in range(200):
        try:
            open(sys.argv[5]).close()
            break
        except OSError:
            time.sleep(0.1)
    s.settimeout(0.5)
    rsize = 65536
while answers < total:
    try:
        chunk = s.recv(rsize)
    except (socket.timeout, ConnectionResetError):
        closed = True
        break
    if not chunk:
        closed = True
        break
    buf += chunk
    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
        n = struct.unpack(">H", buf[:2])[0]
        msg, buf = buf[2:2 + n], buf[2 + n:]
        answers += 1
        if len(msg) >= 12 and struct.unpack(">H", msg[6:8])[0] == 40:
            full += 1
        if sent < total:
            try:
                s.sendall(query(sent))
            except OSError:
                closed = True
                break
            sent += 1
    if closed:
        break
    time.sleep(0.001)
print("answers", answers, "full", full)
if closed:
    print("closed")
PY

# The gateway's kernel keeps at most 64 KiB of unsent data per socket (tcp_wmem, in its
# namespace only; small routers have such limits): most of the 64 answers waiting for the
# client then stay in dotgw's own output buffer for as long as the client reads.
ip netns exec "$NS_GW" sysctl -qw net.ipv4.tcp_wmem="4096 16384 65536" ||
	lab_bail "setting tcp_wmem in the gateway's namespace"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" || lab_finish
# 256 answers of about 2.9 KB: some 750 KB through one connection, at most 64 waiting.
lab_run "$NS_CLIENT" python3 "$LAB_DIR/pipeline.py" "$LAB_DECOY4" 256 64 1024
lab_check_eq "a slow but steady reader gets all 256 large answers, each complete" \
	"answers 256 full 256" "$LAB_OUT"
lab_check_eq "no client was cut off" "" \
	"$(grep 'does not read its answers' "$DOTGW_LOG")"
lab_run "$NS_CLIENT" python3 "$LAB_DIR/pipeline.py" "$LAB_DECOY6" 256 64 1024
lab_check_eq "the same over IPv6" "answers 256 full 256" "$LAB_OUT"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"

# A client that reads nothing while 256 answers pile up (more than the kernel's buffers and
# 256 KiB of ours): dotgw cuts it off instead of holding them.
lab_bg "$NS_CLIENT" "$LAB_DIR/silent.out" python3 "$LAB_DIR/pipeline.py" "$LAB_DECOY4" 256 256 0 \
	"$LAB_DIR/silent.flag"
silent=$LAB_BG_PID
lab_ok "a client that does not read: dotgw says it cuts it off" \
	lab_wait_until 100 grep -q 'does not read its answers' "$DOTGW_LOG"
touch "$LAB_DIR/silent.flag"
wait "$silent"
lab_bg_forget "$silent"
lab_check_match "...and the client sees the connection end" "closed" "$(cat "$LAB_DIR/silent.out")"

lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_finish
