#!/bin/bash
# notify_querylog.test.sh - systemd readiness notification (READY=1 once serving, RELOADING=1
# and READY=1 around a reload, STOPPING=1 at the end), received on a NOTIFY_SOCKET of the
# test's own; and --query-log: one line per answered query, naming the client, the question,
# the rcode and where the answer came from (the upstream, or the cache).
#
#   client --- gw-c [gateway: dotgw --query-log, NOTIFY_SOCKET=...] gw-u --- upstream
#
# Usage: notify_querylog.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3
lab_require_dotgw "${1:-}"
lab_setup

# A datagram socket that dotgw, once it runs as nobody, may write to.
chmod o+x "$LAB_DIR"
NOTIFY_DIR="$LAB_DIR/notify"
mkdir -m 755 "$NOTIFY_DIR"
NOTES="$LAB_DIR/notify.txt"
lab_bg "$NS_GW" "$LAB_DIR/notify.log" python3 -c '
import os, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
open(out, "w").close()
while True:
    data = s.recv(4096)
    with open(out, "a") as f:
        f.write(data.decode() + "\n--\n")
' "$NOTIFY_DIR/sock" "$NOTES"
LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 50 test -e "$NOTES" || lab_bail "notify listener"

export NOTIFY_SOCKET="$NOTIFY_DIR/sock"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --log-level info --scope gateway --interface "$LAB_GW_IF_CLIENT" --query-log ||
	lab_finish
unset NOTIFY_SOCKET
lab_wait_until 30 grep -q '^READY=1' "$NOTES"
lab_ok "READY=1 once serving, with a status" grep -q '^STATUS=serving: mode tproxy' "$NOTES"

lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" +tcp nothere.example.test A
lab_wait_until 30 grep -q 'nothere' "$DOTGW_LOG"
lab_ok "query log: the upstream's answer" grep -Eq \
	"query $LAB_CLIENT4:[0-9]+ www.example.test. 1 NOERROR udp $LAB_UP4@853#$LAB_AUTH_NAME [0-9]+ ms" \
	"$DOTGW_LOG"
lab_ok "query log: the cached answer" grep -Eq \
	"query $LAB_CLIENT4:[0-9]+ www.example.test. 1 NOERROR udp cache [0-9]+ ms" "$DOTGW_LOG"
lab_ok "query log: NXDOMAIN over TCP" grep -Eq \
	"query \\[?$LAB_CLIENT4\\]?:[0-9]+ nothere.example.test. 1 NXDOMAIN tcp $LAB_UP4" "$DOTGW_LOG"

kill -HUP "$DOTGW_PID"
lab_wait_until 30 grep -q 'reloaded' "$DOTGW_LOG"
lab_wait_until 30 sh -c "[ \$(grep -c '^READY=1' '$NOTES') -ge 2 ]"
lab_ok "RELOADING=1 at the reload" grep -q '^RELOADING=1' "$NOTES"
lab_check_eq "READY=1 again after it" 2 "$(grep -c '^READY=1' "$NOTES")"
lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_wait_until 30 grep -q '^STOPPING=1' "$NOTES"
lab_ok "STOPPING=1 at the end" grep -q '^STOPPING=1' "$NOTES"
lab_finish
