#!/bin/bash
# local_errors.test.sh - a failure of dotgw's own machine (here: out of file descriptors, so no
# upstream connection can be opened) is counted and logged as a local error, and never backs
# the upstream off: once descriptors are free again the very next query is answered.
#
#   client --- gw-c [gateway: dotgw --mode nfqueue --queues 1] gw-u --- upstream (DoT @853)
#   python3 holds enough   [RLIMIT_NOFILE 64                 ]
#   TCP connections to use up dotgw's descriptors, then lets them go
#
# nfqueue mode: UDP answers leave through raw sockets opened at start, so the only descriptor a
# UDP query needs is its upstream connection (opened on the first query). This machine's root
# lacks CAP_SYS_RESOURCE, so the limit is set at start (prlimit) and TCP clients, which take a
# descriptor each, exhaust it.
#
# Usage: local_errors.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" prlimit python3
lab_require_dotgw "${1:-}"
lab_setup

cat >"$LAB_DIR/hold.py" <<'PY'
# hold.py SERVER COUNT FLAG: open COUNT TCP connections to SERVER port 53, say "open", keep them
# until the file FLAG exists (30 s at most), then close them all.
import os, socket, sys, time
conns = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((sys.argv[1], 53))
    conns.append(s)
print("open", flush=True)
for _ in range(300):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
PY

# lab_start_dotgw runs $DOTGW: prlimit execs dotgw, under the lower limit, in its place.
real=$DOTGW
DOTGW=$(command -v prlimit)
lab_start_dotgw --nofile=64:64 "$real" "${LAB_DOTGW_ARGS[@]}" --mode nfqueue --queues 1 \
	--scope gateway --interface "$LAB_GW_IF_CLIENT" --tcp-idle-timeout 60000 \
	--metrics 127.0.0.1:9853 || lab_finish
DOTGW=$real
fds()
{
	find "/proc/$DOTGW_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}
base=$(fds)
lab_log "dotgw holds $base descriptors of 64"
lab_bg "$NS_CLIENT" "$LAB_DIR/hold.out" python3 "$LAB_DIR/hold.py" "$LAB_DECOY4" \
	$((64 - base + 8)) "$LAB_DIR/release"
holder=$LAB_BG_PID
lab_ok "TCP clients took every descriptor" lab_wait_until 100 sh -c "[ \$(find /proc/$DOTGW_PID/fd \
	-mindepth 1 -maxdepth 1 | wc -l) -ge 64 ] && grep -q open '$LAB_DIR/hold.out'"

# Some 3 s of queries that cannot be sent: a back-off (0.5 s, doubled per failure) would
# by now keep the upstream out for seconds.
for i in $(seq 1 12); do
	lab_dig "$NS_CLIENT" +tries=1 +time=2 @"$LAB_DECOY4" "q$i.example.test" A
	[ "$(lab_dig_status)" = SERVFAIL ] || break
	lab_sleep 0.25
done
lab_check_eq "without descriptors: SERVFAIL at once" SERVFAIL "$(lab_dig_status)"
lab_check_match "the log names a local error, not the upstream's" \
	'cannot open a connection: Too many open files \(a local error' "$(cat "$DOTGW_LOG")"

touch "$LAB_DIR/release"
wait "$holder"
lab_bg_forget "$holder"
lab_ok "the TCP clients are gone, their descriptors free" \
	lab_wait_until 100 sh -c "[ \$(find /proc/$DOTGW_PID/fd -mindepth 1 -maxdepth 1 | wc -l) -le $base ]"
lab_dig "$NS_CLIENT" +tries=1 @"$LAB_DECOY4" www.example.test A
lab_check_eq "descriptors back: the next query is answered by the upstream" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_check_nomatch "the upstream was never called unusable" 'unusable' "$(cat "$DOTGW_LOG")"
metrics=$(ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
	printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3')
lab_check_match "metrics: the upstream is up" 'dotgw_upstream_up\{[^}]*\} 1' "$metrics"
lab_check_match "metrics: local errors counted" \
	'^dotgw_upstream_local_errors_total [1-9]' "$metrics"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"

lab_stop_dotgw
lab_check_eq "dotgw exits 0" 0 "$?"
lab_check_eq "no upstream failure counted" 0 "$(lab_dotgw_stat upstream_failures)"
lab_check_num "local errors counted" "$(lab_dotgw_stat upstream_local_errors)" -ge 1
lab_finish
