#!/bin/bash
# reload.test.sh - SIGHUP reloads the config file while queries flow: the upstream changes
# from unbound (203.0.113.2) to dotserver.py (203.0.113.3) under a bounded dnsperf load with no
# query lost and nothing leaked to the decoy; a bad file changes nothing and says why; a new
# scope takes effect (rules replaced in one transaction). In both capture modes.
#
#   client (dnsperf) --- gw-c [gateway: dotgw --config F] gw-u --- upstream 203.0.113.2 (unbound)
#                                                              \-- 203.0.113.3 (dotserver.py)
#
# Usage: reload.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" dnsperf python3
lab_require_dotgw "${1:-}"
DOTSERVER=$(readlink -f -- "$(dirname "$0")/dotserver.py")
lab_setup

SRV4=203.0.113.3
PKI="$LAB_DIR/pki"
sed "s/^subjectAltName = .*/subjectAltName = DNS:$LAB_AUTH_NAME/" "$PKI/server.ext" \
	>"$PKI/srv.ext"
{
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$PKI/srv.key" -out "$PKI/srv.csr" -subj "/CN=$LAB_AUTH_NAME" &&
		openssl x509 -req -in "$PKI/srv.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" \
			-set_serial "0x$(openssl rand -hex 8)" -days 2 -out "$PKI/srv.pem" \
			-extfile "$PKI/srv.ext"
} >"$PKI/srv.log" 2>&1 || lab_bail "dotserver's certificate"
ip -n "$NS_UP" addr add "$SRV4/24" dev "$LAB_IF_UP" || lab_bail "adding $SRV4"
STATS="$LAB_DIR/dotserver.json"
lab_bg "$NS_UP" "$LAB_DIR/dotserver.log" python3 "$DOTSERVER" --listen "$SRV4" \
	--cert "$PKI/srv.pem" --key "$PKI/srv.key" --stats "$STATS"
LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 100 test -s "$STATS" || lab_bail "dotserver did not start"
srv_queries()
{
	grep -Eo '"queries": [0-9]+' "$STATS" | grep -Eo '[0-9]+$'
}
for ((i = 0; i < 4000; i++)); do
	echo "reload$i.bench.test A"
done >"$LAB_DIR/queries.txt"

CONF="$LAB_DIR/dotgw.conf"
# write_conf UPSTREAM SCOPE [EXTRA-LINE]
write_conf()
{
	printf 'upstream = %s\nscope = %s\ninterface = %s\nca-file = %s\nlog-level = info\n%s\n%s\n' \
		"$1" "$2" "$LAB_GW_IF_CLIENT" "$LAB_CA" "cache-size = 0" "${3:-}" >"$CONF"
}

for mode in tproxy nfqueue; do
	lab_log "$mode: reload under load moves the queries to another upstream"
	lab_decoy_reset
	write_conf "$LAB_UP4#$LAB_AUTH_NAME" gateway
	before=$(srv_queries)
	lab_start_dotgw --config "$CONF" --mode "$mode" --queues 2 || lab_finish
	# about 8 s at 500 q/s, bounded in count and time
	lab_bg "$NS_CLIENT" "$LAB_DIR/dnsperf.out" dnsperf -s "$LAB_DECOY4" \
		-d "$LAB_DIR/queries.txt" -n 1 -Q 500 -l 20 -t 3
	load=$LAB_BG_PID
	lab_sleep 2
	write_conf "$SRV4#$LAB_AUTH_NAME" gateway
	kill -HUP "$DOTGW_PID"
	lab_wait_until 50 grep -q 'reloaded' "$DOTGW_LOG"
	lab_ok "$mode: the reload is logged" grep -q "reloaded $CONF: 1 upstreams" "$DOTGW_LOG"
	wait "$load"
	out=$(cat "$LAB_DIR/dnsperf.out")
	sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' <<<"$out")
	done_=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' <<<"$out")
	lost=$(sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p' <<<"$out")
	noerror=$(sed -n 's/.*NOERROR \([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
	lab_log "$mode reload: sent=$sent completed=$done_ lost=$lost noerror=$noerror"
	lab_check_eq "$mode: dnsperf sent every query" 4000 "$sent"
	lab_check_eq "$mode: no query lost across the reload" 0 "$lost"
	lab_check_eq "$mode: every query answered NOERROR" "$sent" "$noerror"
	lab_check_num "$mode: the new upstream took queries after the reload" \
		"$(($(srv_queries) - before))" -gt 0
	lab_check_eq "$mode: nothing reached the decoy" 0 "$(lab_decoy_count)"

	lab_log "$mode: a bad file is refused and changes nothing"
	printf 'upstream = 999.1.1.1\n' >"$CONF"
	kill -HUP "$DOTGW_PID"
	lab_wait_until 50 grep -q 'reload failed' "$DOTGW_LOG"
	lab_ok "$mode: the failure names the file, line and key" \
		grep -q "reload: $CONF:1: upstream: invalid value '999.1.1.1'" "$DOTGW_LOG"
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" after-bad.bench.test A
	lab_check_eq "$mode: still answered after the refused reload" "NOERROR 203.0.113.99" \
		"$(lab_dig_status) $(lab_dig_rdata A)"

	lab_log "$mode: a reload can widen the scope: the gateway's own queries get captured"
	lab_dig "$NS_GW" @"$LAB_DECOY4" www.example.test A
	lab_check_eq "$mode: host scope not captured yet (the decoy answers)" "$LAB_DECOY_A" \
		"$(lab_dig_rdata A)"
	write_conf "$SRV4#$LAB_AUTH_NAME" both
	kill -HUP "$DOTGW_PID"
	lab_wait_until 50 sh -c "[ \$(grep -c reloaded '$DOTGW_LOG') -ge 2 ]"
	lab_dig "$NS_GW" @"$LAB_DECOY4" scope.bench.test A
	lab_check_eq "$mode: after the reload the host's query is captured" \
		"NOERROR 203.0.113.99" "$(lab_dig_status) $(lab_dig_rdata A)"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
	lab_check_eq "$mode: no query dropped" 0 "$(lab_dotgw_stat dropped)"
done
lab_finish
