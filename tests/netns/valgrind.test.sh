#!/bin/bash
# valgrind.test.sh - dotgw under valgrind memcheck through a short run of what clients make it
# do; valgrind must find no invalid access, no use of uninitialised memory, and no memory
# definitely or indirectly lost at exit.
#
#   client --- gw-c [gateway: valgrind dotgw --scope both] gw-u --- upstream 203.0.113.2 (DoT)
#   (queries 192.0.2.53 and 2001:db8:53::53;               gw-d --- decoy 192.0.2.53 (plain
#    so does the gateway itself)                                    DNS, must see nothing)
#
# Once in tproxy mode, once in nfqueue mode (--queues 2), both with --user nobody: UDP and TCP,
# IPv4 and IPv6, from the client and from the gateway; a large answer truncated over UDP and
# the retry over TCP; the same query twice from the same port (a cache hit); junk (a 3-octet
# datagram, a response instead of a query, a header claiming 5 questions, a TCP message of 2
# octets, a TCP length prefix of 0); then SIGTERM. The checks: the daemon exits 0 (valgrind
# exits 99 when it reported errors) and valgrind's log says "ERROR SUMMARY: 0 errors".
#
# Everything is slower under valgrind, the first pass through a code path most of all: the
# daemon gets VG_READY_SECONDS (default 60) to log "ready" and VG_EXIT_SECONDS (default 30) to
# exit after SIGTERM (the leak check runs then); queries get a 10 s deadline and stall timeout
# (the default stall timeout, 1 s, can expire on the first query over a new TLS connection).
# A binary built with a sanitizer that replaces malloc (ASan, TSan, MSan) cannot run under
# valgrind: the test is skipped.
#
# Usage: valgrind.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" valgrind
lab_require_dotgw "${1:-}"
if grep -qa -e __asan_init -e __tsan_init -e __msan_init -e __hwasan_init "$DOTGW"; then
	lab_skip "$DOTGW is built with a sanitizer runtime; valgrind cannot run it"
fi

VG_READY_SECONDS=${VG_READY_SECONDS:-60}
VG_EXIT_SECONDS=${VG_EXIT_SECONDS:-30}
VG_CACHE_PORT=53053

lab_setup

cat >"$LAB_DIR/junk.sh" <<'EOF'
# junk.sh ADDRESS [tcp]: malformed DNS to ADDRESS port 53 with bash's /dev/udp and /dev/tcp.
addr=$1
for m in '\x12\x34\x01' \
	'\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00' \
	'\x12\x35\x01\x00\x00\x05\x00\x00\x00\x00\x00\x00'; do
	# One write, one datagram.
	exec 3<>"/dev/udp/$addr/53" || exit 1
	printf "$m" >&3
	exec 3>&-
done
[ "$2" = tcp ] || exit 0
for m in '\x00\x02\xff\xff' '\x00\x00'; do
	exec 3<>"/dev/tcp/$addr/53" || exit 1
	printf "$m" >&3
	# until the daemon closes the connection, or 1 s
	timeout 1 cat <&3 >/dev/null
	exec 3>&-
done
EOF

# vg_start NAME ARGS...: run dotgw with ARGS under valgrind in NS_GW and wait for "ready".
# Sets DOTGW_LOG, VG_LOG, DOTGW_JOB and DOTGW_PID (valgrind's process is the daemon's).
vg_start()
{
	local name=$1
	shift
	DOTGW_LOG="$LAB_DIR/dotgw-$name.log"
	VG_LOG="$LAB_DIR/valgrind-$name.log"
	LAB_CMD=
	lab_log "starting dotgw $* under valgrind"
	# --vgdb=no: no FIFOs in /tmp that the daemon, no longer root, could not remove
	lab_bg "$NS_GW" "$DOTGW_LOG" valgrind --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=no \
		--vgdb=no --log-file="$VG_LOG" "$DOTGW" "$@"
	DOTGW_JOB=$LAB_BG_PID
	DOTGW_PID=$(lab_bg_cmd_pid "$DOTGW_JOB")
	if LAB_WAIT_PID=$DOTGW_JOB lab_wait_until $((VG_READY_SECONDS * 10)) \
		grep -qw ready "$DOTGW_LOG"; then
		return 0
	fi
	if lab_pid_alive "$DOTGW_JOB"; then
		lab_fail "$name: dotgw did not log 'ready' in $VG_READY_SECONDS s under valgrind"
		vg_stop KILL
	else
		wait "$DOTGW_JOB" 2>/dev/null
		lab_fail "$name: dotgw exited (status $?) before logging 'ready'" \
			"$(tail -n 30 "$VG_LOG" 2>/dev/null)"
		lab_bg_forget "$DOTGW_JOB"
	fi
	return 1
}

# vg_stop [SIGNAL]: send SIGNAL (default TERM), wait up to VG_EXIT_SECONDS for the exit and
# return its status (124 when the daemon had to be killed).
vg_stop()
{
	local sig=${1:-TERM} rc i
	kill -s "$sig" "${DOTGW_PID:-$DOTGW_JOB}" 2>/dev/null
	for ((i = 0; i < VG_EXIT_SECONDS * 10; i++)); do
		lab_pid_alive "$DOTGW_JOB" || break
		lab_sleep 0.1
	done
	if lab_pid_alive "$DOTGW_JOB"; then
		kill -KILL ${DOTGW_PID:+"$DOTGW_PID"} 2>/dev/null
		wait "$DOTGW_JOB" 2>/dev/null
		rc=124
	else
		wait "$DOTGW_JOB" 2>/dev/null
		rc=$?
	fi
	lab_bg_forget "$DOTGW_JOB"
	DOTGW_JOB=
	DOTGW_PID=
	return "$rc"
}

# expect_upstream WHAT NS SERVER TYPE DIG-ARGS...: the upstream's answer, from SERVER.
expect_upstream()
{
	local what=$1 ns=$2 server=$3 type=$4 expect=$LAB_UP_A proto=UDP
	shift 4
	[ "$type" = AAAA ] && expect=$LAB_UP_AAAA
	[[ " $* " == *" +tcp "* ]] && proto=TCP
	lab_dig "$ns" @"$server" www.example.test "$type" +time=12 +tries=1 "$@"
	lab_check_eq "$what: $proto $type @$server" "NOERROR $expect from $server#53 ($proto)" \
		"$(lab_dig_summary "$type")"
}

# scenario NAME ARGS...: the whole run against dotgw ARGS under valgrind.
scenario()
{
	local name=$1 server rc
	shift
	vg_start "$name" "${LAB_DOTGW_ARGS[@]}" --scope both --interface "$LAB_GW_IF_CLIENT" --user nobody --timeout 10000 \
		--stall-timeout 10000 "$@" || return 0

	expect_upstream "$name, client" "$NS_CLIENT" "$LAB_DECOY4" A +notcp
	expect_upstream "$name, client" "$NS_CLIENT" "$LAB_DECOY6" AAAA +notcp
	expect_upstream "$name, client" "$NS_CLIENT" "$LAB_DECOY6" A +tcp
	expect_upstream "$name, client" "$NS_CLIENT" "$LAB_DECOY4" AAAA +tcp
	expect_upstream "$name, gateway" "$NS_GW" "$LAB_DECOY6" A +notcp
	expect_upstream "$name, gateway" "$NS_GW" "$LAB_DECOY4" AAAA +tcp

	# One source port: the same flow, so the same worker (and cache) in nfqueue mode too.
	for _ in 1 2; do
		expect_upstream "$name, client, port $VG_CACHE_PORT" "$NS_CLIENT" "$LAB_DECOY4" A \
			-b "$LAB_CLIENT4#$VG_CACHE_PORT" +notcp
	done

	for server in "$LAB_DECOY4" "$LAB_DECOY6"; do
		lab_dig "$NS_CLIENT" @"$server" big.example.test TXT +time=12 +tries=1
		lab_check_eq "$name: a large answer @$server: truncated, then all of it over TCP" \
			"NOERROR $LAB_BIG_TXT_COUNT TCP" \
			"$(lab_dig_status) $(lab_dig_ancount) $(lab_dig_proto)"
		lab_check_match "$name: dig @$server saw TC" 'Truncated, retrying in TCP' "$LAB_OUT"
	done

	lab_run "$NS_CLIENT" bash "$LAB_DIR/junk.sh" "$LAB_DECOY4" tcp
	lab_check_eq "$name: junk sent to $LAB_DECOY4" 0 "$LAB_RC"
	lab_run "$NS_CLIENT" bash "$LAB_DIR/junk.sh" "$LAB_DECOY6"
	lab_check_eq "$name: junk sent to $LAB_DECOY6" 0 "$LAB_RC"
	expect_upstream "$name, client, after the junk" "$NS_CLIENT" "$LAB_DECOY6" A +notcp

	vg_stop
	rc=$?
	lab_check_eq "$name: dotgw under valgrind exits 0 on SIGTERM (99: valgrind errors)" 0 "$rc"
	if grep -q 'ERROR SUMMARY: 0 errors' "$VG_LOG"; then
		lab_pass "$name: valgrind: ERROR SUMMARY: 0 errors"
	else
		lab_fail "$name: valgrind: ERROR SUMMARY: 0 errors" "valgrind's log ($VG_LOG):" \
			"$(grep -v '^--' "$VG_LOG" | head -n 120)"
	fi
	lab_check_num "$name: cache hits counted" "$(lab_dotgw_stat cache_hits)" -ge 1
	lab_check_num "$name: malformed queries counted" "$(lab_dotgw_stat malformed)" -ge 1
}

SECONDS=0
scenario tproxy --mode tproxy
scenario nfqueue --mode nfqueue --queues 2
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_log "valgrind runs took ${SECONDS} s"
lab_finish
