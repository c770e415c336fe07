#!/bin/bash
# upstream_faults.test.sh - dotgw's upstream engine against upstreams that misbehave: answers
# out of order, connections that stall, that the server closes when idle or cuts mid-stream
# (with a TLS close_notify, a bare TCP FIN or a RST), a server killed and restarted under load,
# wrong answers, wrong certificates and pins. In every scenario a bounded load (dnsperf, unique
# names, -n 1) goes from the client through dotgw, and every query must be answered (NOERROR or
# SERVFAIL), none lost; then the scenario's own check. dotserver.py plays the faulty upstream.
#
#   client (dnsperf) --- gw-c [gateway: dotgw --mode tproxy --scope gateway] gw-u --- upstream
#   queries to 192.0.2.53 (captured)                                      203.0.113.2 unbound
#                                                                          (DoT, dot.test)
#                                                                         203.0.113.3 dotserver.py
#                                                                          (DoT, scripted faults)
#
# Each scenario prints one line to grep (': sent='):
#   # SCENARIO: sent=N answered=N servfail=N lost=N handshakes=N resumed=N [more=N...]
# answered counts every answer dnsperf received (NOERROR and SERVFAIL); handshakes and resumed
# are dotgw's upstream_handshakes and upstream_resumed over the scenario.
#
# Usage: upstream_faults.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf python3 base64
lab_require_dotgw "${1:-}"
DOTSERVER=$(readlink -f -- "$(dirname "$0")/dotserver.py")
[ -r "$DOTSERVER" ] || lab_bail "dotserver.py is missing next to $0"
lab_setup

SRV4=203.0.113.3
PKI="$LAB_DIR/pki"
DOTGW_BASE=(--mode tproxy --scope gateway --interface "$LAB_GW_IF_CLIENT" --ca-file "$LAB_CA" --log-level debug)
UNBOUND_UP="$LAB_UP4#$LAB_AUTH_NAME"

# ---------------------------------------------------------------------------------------------
# Certificates: dotserver's own for dot.test (another key than unbound's), and one for
# evil.test, both signed by the lab CA.

# make_cert NAME DNS-NAME: $PKI/NAME.pem and $PKI/NAME.key, signed by the lab CA.
make_cert()
{
	sed "s/^subjectAltName = .*/subjectAltName = DNS:$2/" "$PKI/server.ext" >"$PKI/$1.ext"
	{
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "/CN=$2" &&
			openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
				-set_serial "0x$(openssl rand -hex 8)" -days 2 -out "$PKI/$1.pem" \
				-extfile "$PKI/$1.ext"
	} >>"$PKI/openssl.log" 2>&1
}

# spki_pin CERT: the base64 SHA-256 of CERT's SubjectPublicKeyInfo (RFC 7858 4.2).
spki_pin()
{
	openssl x509 -pubkey -noout -in "$1" | openssl pkey -pubin -outform der |
		openssl dgst -sha256 -binary | base64
}

if ! make_cert good "$LAB_AUTH_NAME" || ! make_cert evil evil.test; then
	lab_bail "creating dotserver's certificates (see $PKI/openssl.log)"
fi
PIN_GOOD=$(spki_pin "$PKI/good.pem")
PIN_OTHER=$(spki_pin "$PKI/evil.pem")
if [ -z "$PIN_GOOD" ] || [ -z "$PIN_OTHER" ] || [ "$PIN_GOOD" = "$PIN_OTHER" ]; then
	lab_bail "computing SPKI pins"
fi

ip -n "$NS_UP" addr add "$SRV4/24" dev "$LAB_IF_UP" || lab_bail "adding $SRV4 to the upstream"

# ---------------------------------------------------------------------------------------------
# dotserver.py in the upstream namespace

# srv_start NAME CERT [OPTION...]: run dotserver on $SRV4@853 with $PKI/CERT.pem and wait for
# its stats file (written once it listens). Sets SRV_JOB and SRV_STATS.
srv_start()
{
	local name=$1 cert=$2
	shift 2
	SRV_STATS="$LAB_DIR/dotserver-$name.json"
	rm -f -- "$SRV_STATS"
	lab_log "starting dotserver $*"
	lab_bg "$NS_UP" "$LAB_DIR/dotserver-$name.log" python3 "$DOTSERVER" --listen "$SRV4" \
		--cert "$PKI/$cert.pem" --key "$PKI/$cert.key" --stats "$SRV_STATS" "$@"
	SRV_JOB=$LAB_BG_PID
	if ! LAB_WAIT_PID=$SRV_JOB lab_wait_until 100 test -s "$SRV_STATS"; then
		lab_fail "dotserver $* did not start" "$(lab_indent <"$LAB_DIR/dotserver-$name.log")"
		return 1
	fi
}

srv_stop()
{
	[ -n "${SRV_JOB:-}" ] || return 0
	lab_bg_stop "$SRV_JOB" "${1:-TERM}"
	SRV_JOB=
}

# srv_stat KEY [FILE]: a counter of dotserver (default: the last one started); its stats file
# is one flat JSON object.
srv_stat()
{
	grep -Eo "\"$1\": [0-9]+" "${2:-$SRV_STATS}" 2>/dev/null | grep -Eo '[0-9]+$'
}

# srv_stat_ge KEY MIN [FILE]: is dotserver's counter KEY at least MIN?
# shellcheck disable=SC2317 # called through lab_wait_until
srv_stat_ge()
{
	local v
	v=$(srv_stat "$1" "${3:-}")
	[ -n "$v" ] && [ "$v" -ge "$2" ]
}

# ---------------------------------------------------------------------------------------------
# Load and its checks

# load_file NAME COUNT: COUNT unique names under bench.test (unbound and dotserver answer A).
load_file()
{
	local i
	for ((i = 0; i < $2; i++)); do
		echo "$1-$i.bench.test A"
	done >"$LAB_DIR/q-$1.txt"
	echo "$LAB_DIR/q-$1.txt"
}

# load_parse TEXT: dnsperf's report into L_SENT L_COMPLETED L_LOST L_NOERROR L_SERVFAIL
# L_MAX_MS (the largest latency).
load_parse()
{
	local max
	L_SENT=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' <<<"$1")
	L_COMPLETED=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$1")
	L_LOST=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$1")
	L_NOERROR=$(grep '^ *Response codes:' <<<"$1" | grep -Eo 'NOERROR [0-9]+' | cut -d' ' -f2)
	L_SERVFAIL=$(grep '^ *Response codes:' <<<"$1" | grep -Eo 'SERVFAIL [0-9]+' | cut -d' ' -f2)
	L_NOERROR=${L_NOERROR:-0}
	L_SERVFAIL=${L_SERVFAIL:-0}
	max=$(sed -n 's/^ *Average Latency (s):.*max \([0-9.]*\)).*/\1/p' <<<"$1")
	L_MAX_MS=$(awk -v s="${max:-99}" 'BEGIN { printf "%d", s * 1000 }')
}

# load NAME COUNT [DNSPERF-OPTION...]: COUNT queries from the client to the decoy address
# (captured), each name once, at most 20 s; the result in L_* (see load_parse).
load()
{
	local name=$1 count=$2 file
	shift 2
	file=$(load_file "$name" "$count")
	L_COUNT=$count
	lab_run "$NS_CLIENT" dnsperf -s "$LAB_DECOY4" -d "$file" -n 1 -l 20 -t 5 "$@"
	L_RC=$LAB_RC
	load_parse "$LAB_OUT"
}

# check_answered SCENARIO: every query was answered, NOERROR or SERVFAIL, none lost.
check_answered()
{
	lab_check_eq "$1: dnsperf ran" 0 "$L_RC"
	lab_check_eq "$1: dnsperf sent every query" "$L_COUNT" "$L_SENT"
	lab_check_eq "$1: every query was answered" "$L_SENT" "$L_COMPLETED"
	lab_check_eq "$1: no query was lost" 0 "$L_LOST"
	lab_check_eq "$1: every answer is NOERROR or SERVFAIL" "$L_COMPLETED" \
		"$((L_NOERROR + L_SERVFAIL))"
}

# check_all_noerror SCENARIO
check_all_noerror()
{
	lab_check_eq "$1: every answer is NOERROR" "$L_SENT" "$L_NOERROR"
}

# stop_dotgw SCENARIO: stop dotgw, check its exit and that its own tally agrees: one answer or
# one SERVFAIL per query, nothing dropped.
stop_dotgw()
{
	local q a s
	lab_stop_dotgw
	lab_check_eq "$1: dotgw exits 0 on SIGTERM" 0 "$?"
	q=$(lab_dotgw_stat queries)
	a=$(lab_dotgw_stat answered)
	s=$(lab_dotgw_stat servfail)
	lab_check_eq "$1: dotgw received every query" "$L_SENT" "$q"
	lab_check_eq "$1: dotgw answered or SERVFAILed each query once (answered=$a servfail=$s)" \
		"$q" "$((${a:-0} + ${s:-0}))"
	lab_check_eq "$1: dotgw's SERVFAILs are the client's" "$L_SERVFAIL" "$s"
	lab_check_eq "$1: dotgw dropped nothing" 0 "$(lab_dotgw_stat dropped)"
}

# summary SCENARIO [KEY...]: the line for the issue note; KEYs are more of dotgw's counters.
summary()
{
	local name=$1 line k
	shift
	line="sent=$L_SENT answered=$L_COMPLETED servfail=$L_SERVFAIL lost=$L_LOST"
	line+=" handshakes=$(lab_dotgw_stat upstream_handshakes)"
	line+=" resumed=$(lab_dotgw_stat upstream_resumed)"
	for k in "$@"; do
		line+=" ${k#upstream_}=$(lab_dotgw_stat "$k")"
	done
	lab_log "$name: $line max_latency_ms=$L_MAX_MS"
}

T0=$(date +%s)

# ---------------------------------------------------------------------------------------------
lab_log "1. normal: unbound, steady load (1000 queries/s): the pool (4 by default) opens at most 2"
if lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$UNBOUND_UP"; then
	load normal 3000 -q 50 -Q 1000
	check_answered normal
	check_all_noerror normal
	stop_dotgw normal
	# one connection carries 1000 q/s on a LAN (another opens only when each open one has
	# 16 in flight); 2 allows the standby or one reconnect, more would be churn
	lab_check_num "normal: TLS handshakes <= 2" \
		"$(lab_dotgw_stat upstream_handshakes)" -le 2
	lab_check_num "normal: at least one TLS handshake" "$(lab_dotgw_stat upstream_handshakes)" -ge 1
	lab_check_eq "normal: no upstream failure" 0 "$(lab_dotgw_stat upstream_failures)"
	summary normal upstream_failures
fi

# ---------------------------------------------------------------------------------------------
lab_log "2. out of order: dotserver answers each batch of 8 queries in reverse"
if srv_start reverse good --reverse 8 &&
	lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME"; then
	load reverse 2000 -q 50
	check_answered reverse
	check_all_noerror reverse
	stop_dotgw reverse
	lab_check_eq "reverse: no answer taken for a bad one" 0 "$(lab_dotgw_stat upstream_bad_answers)"
	lab_check_eq "reverse: no connection failed" 0 "$(lab_dotgw_stat upstream_failures)"
	lab_check_num "reverse: dotserver really answered out of order" \
		"$(srv_stat reordered)" -ge 100
	summary reverse upstream_bad_answers upstream_failures
fi
srv_stop

# ---------------------------------------------------------------------------------------------
lab_log "3. stall: dotserver answers 5 queries per connection, then keeps silent"
if srv_start stall-one good --stall-after 5 &&
	lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME"; then
	# 4 s at 250 queries/s: several stall, back-off, reconnect cycles
	load stall-one 1000 -q 20 -Q 250
	check_answered stall-one
	stop_dotgw stall-one
	lab_check_num "stall-one: stalled connections detected" "$(lab_dotgw_stat upstream_stalled)" -ge 1
	lab_check_num "stall-one: probes sent" "$(lab_dotgw_stat upstream_probes)" -ge 1
	lab_check_num "stall-one: some answers got through" "$L_NOERROR" -ge 5
	lab_check_num "stall-one: SERVFAIL before dnsperf's 5 s (max ${L_MAX_MS} ms)" \
		"$L_MAX_MS" -lt 3500
	summary stall-one upstream_stalled upstream_probes upstream_retries
fi
srv_stop

lab_log "3b. stall: the stalling dotserver first, unbound second: queries are sent again there"
if srv_start stall-two good --stall-after 5 &&
	lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME" \
		--upstream "$UNBOUND_UP"; then
	load stall-two 2000 -q 20 -Q 500
	check_answered stall-two
	check_all_noerror stall-two
	stop_dotgw stall-two
	lab_check_num "stall-two: stalled connections detected" "$(lab_dotgw_stat upstream_stalled)" -ge 1
	lab_check_num "stall-two: stalled queries sent again" "$(lab_dotgw_stat upstream_retries)" -ge 1
	lab_check_num "stall-two: every answer within dotgw's 3 s deadline (max ${L_MAX_MS} ms)" \
		"$L_MAX_MS" -lt 3000
	summary stall-two upstream_stalled upstream_probes upstream_retries
fi
srv_stop

# ---------------------------------------------------------------------------------------------
# idle_scenario NAME CLOSE-STYLE PAUSE: two bursts of 500 queries to a dotserver that closes
# connections idle for 1 s (CLOSE-STYLE: tls or fin); the second burst PAUSE s after it closed.
# Closing an idle connection is the server's right (RFC 7766 6.2.3): it is no upstream failure.
idle_scenario()
{
	local name=$1 style=$2 pause=$3 burst1
	srv_start "$name" good --idle-close 1 --close-style "$style" &&
		lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME" || return 1
	load "$name-1" 500 -q 20
	check_answered "$name-burst-1"
	check_all_noerror "$name-burst-1"
	burst1=("$L_SENT" "$L_COMPLETED" "$L_SERVFAIL" "$L_LOST" "$L_MAX_MS" "$L_NOERROR")
	lab_ok "$name: dotserver closed the idle connection(s)" \
		lab_wait_until 50 srv_stat_ge idle_closed "$(srv_stat connections)"
	[ "$pause" = 0 ] || lab_sleep "$pause"
	load "$name-2" 500 -q 20
	check_answered "$name-burst-2"
	check_all_noerror "$name-burst-2"
	# the figures of both bursts
	L_SENT=$((L_SENT + burst1[0]))
	L_COMPLETED=$((L_COMPLETED + burst1[1]))
	L_SERVFAIL=$((L_SERVFAIL + burst1[2]))
	L_LOST=$((L_LOST + burst1[3]))
	[ "${burst1[4]}" -gt "$L_MAX_MS" ] && L_MAX_MS=${burst1[4]}
	L_NOERROR=$((L_NOERROR + burst1[5]))
	stop_dotgw "$name"
	lab_check_eq "$name: the idle close is no upstream failure" 0 \
		"$(lab_dotgw_stat upstream_failures)"
}

lab_log "4. idle close: dotserver closes connections idle for 1 s; the reconnect resumes TLS"
if idle_scenario idle tls 2; then # the bursts are 3 s apart
	lab_check_num "idle: dotgw resumed a TLS session" "$(lab_dotgw_stat upstream_resumed)" -ge 1
	lab_check_num "idle: dotserver saw a resumed session" "$(srv_stat resumed)" -ge 1
	summary idle upstream_idle_closed upstream_retries upstream_failures
fi
srv_stop

lab_log "4b. idle close with a bare FIN (no TLS close_notify), the next burst right after it"
if idle_scenario idle-fin fin 0; then
	summary idle-fin upstream_idle_closed upstream_retries upstream_failures
fi
srv_stop

# ---------------------------------------------------------------------------------------------
# midclose_scenario NAME CLOSE-STYLE: a single upstream that closes each connection at its
# 50th query (CLOSE-STYLE: rst or fin); the queries in flight are sent again on a new one.
midclose_scenario()
{
	local name=$1 style=$2
	srv_start "$name" good --close-after 50 --close-style "$style" &&
		lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME" || return 1
	load "$name" 2000 -q 20
	check_answered "$name"
	check_all_noerror "$name"
	stop_dotgw "$name"
	lab_check_num "$name: dotserver cut connections" "$(srv_stat cut)" -ge 1
	lab_check_num "$name: queries sent again" "$(lab_dotgw_stat upstream_retries)" -ge 1
	summary "$name" upstream_retries upstream_failures
}

lab_log "5. mid-stream close: dotserver resets (RST) each connection at its 50th query"
midclose_scenario midclose rst
srv_stop

lab_log "5b. mid-stream close with a bare FIN (no TLS close_notify) at the 50th query"
midclose_scenario midclose-fin fin
srv_stop

# ---------------------------------------------------------------------------------------------
lab_log "6. authentication: wrong certificate, wrong pin, pin alone, opportunistic"

# auth_case NAME EXPECT(NOERROR|SERVFAIL) DOTGW-OPTION...: 200 queries against the running
# dotserver.
auth_case()
{
	local name=$1 expect=$2 q0
	shift 2
	q0=$(srv_stat queries)
	lab_start_dotgw "${DOTGW_BASE[@]}" "$@" || return 1
	load "$name" 200 -q 20
	check_answered "$name"
	if [ "$expect" = SERVFAIL ]; then
		lab_check_eq "$name: every answer is SERVFAIL" "$L_SENT" "$L_SERVFAIL"
		lab_check_num "$name: ...at once (max ${L_MAX_MS} ms)" "$L_MAX_MS" -lt 1000
		lab_check_eq "$name: no query reached dotserver" "$q0" "$(srv_stat queries)"
	else
		check_all_noerror "$name"
		lab_check_num "$name: dotserver answered" "$(srv_stat queries)" -gt "$q0"
	fi
	stop_dotgw "$name"
}

if srv_start auth-evil evil; then
	if auth_case wrong-cert SERVFAIL --upstream "$SRV4#$LAB_AUTH_NAME"; then
		lab_check_num "wrong-cert: counted as upstream failures" \
			"$(lab_dotgw_stat upstream_failures)" -ge 1
		lab_check_eq "wrong-cert: no handshake completed" 0 \
			"$(lab_dotgw_stat upstream_handshakes)"
		summary wrong-cert upstream_failures
	fi
	if auth_case opportunistic NOERROR --tls-auth opportunistic \
		--upstream "$SRV4#$LAB_AUTH_NAME"; then
		lab_check_match "opportunistic: a loud warning" 'warn.*NOT AUTHENTICATED' \
			"$(cat "$DOTGW_LOG")"
		lab_check_num "opportunistic: unverified connections counted" \
			"$(lab_dotgw_stat upstream_unverified)" -ge 1
		summary opportunistic upstream_unverified
	fi
fi
srv_stop
if srv_start auth-good good; then
	if auth_case wrong-pin SERVFAIL --upstream "$SRV4#$LAB_AUTH_NAME" --pin "$PIN_OTHER"; then
		lab_check_match "wrong-pin: the pin mismatch is logged" 'SPKI pin mismatch' \
			"$(cat "$DOTGW_LOG")"
		summary wrong-pin upstream_failures
	fi
	if auth_case pin-only NOERROR --upstream "$SRV4" --pin "$PIN_GOOD"; then
		lab_check_eq "pin-only: authenticated (no unverified connection)" 0 \
			"$(lab_dotgw_stat upstream_unverified)"
		summary pin-only upstream_unverified
	fi
fi
srv_stop

# ---------------------------------------------------------------------------------------------
lab_log "7. kill and restart under load: dotserver first, unbound second (ordered)"
# 15 s at 500 queries/s. dotserver is killed 2 s into the load (1000 queries) and restarted
# 3 s later; dotgw's back-off after the kill (0.5, 1, 2, 4 s) brings it back at the latest
# 7.5 s after the kill, well before the load ends.
if srv_start kill-1 good &&
	lab_start_dotgw "${DOTGW_BASE[@]}" --upstream-policy ordered \
		--upstream "$SRV4#$LAB_AUTH_NAME" --upstream "$UNBOUND_UP"; then
	L_COUNT=7500
	file=$(load_file kill "$L_COUNT")
	t_start=$(date +%s%N)
	lab_bg "$NS_CLIENT" "$LAB_DIR/load-kill.out" dnsperf -s "$LAB_DECOY4" -d "$file" -n 1 \
		-l 20 -t 5 -q 50 -Q 500
	load_job=$LAB_BG_PID
	LAB_WAIT_PID=$load_job lab_ok "kill: dotserver receives the load" \
		lab_wait_until 100 srv_stat_ge queries 1000
	kill1_queries=$(srv_stat queries)
	srv_stop KILL
	t_kill=$((($(date +%s%N) - t_start) / 1000000))
	lab_log "kill: dotserver killed $t_kill ms into the load, after $kill1_queries queries"
	lab_sleep 3
	srv_start kill-2 good
	t_restart=$((($(date +%s%N) - t_start) / 1000000))
	t_back=
	if LAB_WAIT_PID=$load_job lab_wait_until 150 srv_stat_ge queries 1; then
		t_back=$((($(date +%s%N) - t_start) / 1000000))
	fi
	desc="kill: the restarted dotserver receives queries again"
	lab_ok "$desc (restarted at $t_restart ms, in use at ${t_back:-?} ms)" test -n "$t_back"
	wait "$load_job"
	L_RC=$?
	lab_bg_forget "$load_job"
	LAB_OUT=$(cat "$LAB_DIR/load-kill.out")
	LAB_CMD="dnsperf (kill and restart)"
	load_parse "$LAB_OUT"
	check_answered kill
	check_all_noerror kill
	kill2_queries=$(srv_stat queries)
	stop_dotgw kill
	lab_check_num "kill: the restarted dotserver took part of the load ($kill2_queries queries)" \
		"$kill2_queries" -ge 100
	summary kill upstream_failures upstream_retries
	lab_log "kill: killed at $t_kill ms, restarted at $t_restart ms, in use again at" \
		"${t_back:-?} ms; dotserver queries before the kill $kill1_queries, after $kill2_queries"
fi
srv_stop

# ---------------------------------------------------------------------------------------------
lab_log "8. wrong answer: dotserver answers a different question"
if srv_start wrong good --wrong-answer &&
	lab_start_dotgw "${DOTGW_BASE[@]}" --upstream "$SRV4#$LAB_AUTH_NAME"; then
	# 2 s at 150 queries/s: several connections, each closed at its first (wrong) answer
	load wrong 300 -q 20 -Q 150
	check_answered wrong
	lab_check_eq "wrong: no wrong answer reached the client (no NOERROR)" 0 "$L_NOERROR"
	stop_dotgw wrong
	lab_check_num "wrong: bad answers counted" "$(lab_dotgw_stat upstream_bad_answers)" -ge 1
	lab_check_num "wrong: dotserver did answer" "$(srv_stat answers)" -ge 1
	summary wrong upstream_bad_answers upstream_failures
fi
srv_stop

lab_log "upstream_faults: $(($(date +%s) - T0)) s of scenarios"
lab_finish
