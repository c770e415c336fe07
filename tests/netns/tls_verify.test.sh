#!/bin/bash
# tls_verify.test.sh - dotgw sends nothing over a DoT connection it could not authenticate: with
# the wrong authentication name, or a CA that did not sign the upstream's certificate, clients
# get SERVFAIL at once (not a timeout), no query reaches the upstream and none leaks to the
# original destination. Also: the upstream address syntaxes, IPv6 upstreams included.
#
#   client --- gw-c [gateway: dotgw --scope both] gw-u --- upstream 203.0.113.2, 2001:db8:113::2
#                                                          (DoT @853, certificate for dot.test)
#                                                 gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Upstream syntax: ADDR[@PORT][#AUTH-NAME]; an IPv6 address may stand bare (2001:db8::1#name)
# or in brackets, which it needs when a port follows ([2001:db8::1]@853#name).
#
# Usage: tls_verify.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" date
lab_require_dotgw "${1:-}"
lab_setup

# dig waits DIG_WAIT s for an answer; a refused upstream must be reported well before that.
DIG_WAIT=5
FAST_MS=3000

# expect_servfail DESC NS SERVER TYPE [+tcp]
expect_servfail()
{
	local t0 t1 ms
	t0=$(date +%s%N)
	lab_dig "$2" @"$3" www.example.test "$4" +time="$DIG_WAIT" +tries=1 ${5:+"$5"}
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	lab_check_eq "$1: SERVFAIL" SERVFAIL "$(lab_dig_status)"
	lab_check_num "$1: within $FAST_MS ms (took $ms ms; dig waits ${DIG_WAIT} s)" "$ms" -lt "$FAST_MS"
}

# refused_upstream LABEL DOTGW-ARGS...: a dotgw whose upstream cannot be authenticated.
refused_upstream()
{
	local label=$1
	shift
	lab_decoy_reset
	lab_upstream_reset
	lab_start_dotgw "$@" || return
	expect_servfail "$label: client UDP A @$LAB_DECOY4" "$NS_CLIENT" "$LAB_DECOY4" A
	expect_servfail "$label: client TCP AAAA @$LAB_DECOY6" "$NS_CLIENT" "$LAB_DECOY6" AAAA +tcp
	expect_servfail "$label: host UDP A @$LAB_DECOY4" "$NS_GW" "$LAB_DECOY4" A
	# Once more: a cached failure or a retry must not turn into a leak or a hang.
	expect_servfail "$label: client UDP A again" "$NS_CLIENT" "$LAB_DECOY4" A
	lab_check_eq "$label: no query reached the upstream" 0 "$(lab_upstream_queries)"
	lab_check_eq "$label: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "$label: dotgw exits 0 on SIGTERM" 0 "$?"
}

# working_upstream UPSTREAM SOURCE: dotgw with --upstream UPSTREAM answers; the upstream logs
# the query as coming from SOURCE (the gateway's address in the upstream's family).
working_upstream()
{
	local label="--upstream $1" before
	lab_decoy_reset
	lab_upstream_reset
	before=$(grep -c "info: $2 www\.example\.test\. A IN" "$LAB_DIR/upstream.log")
	lab_start_dotgw --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --upstream "$1" --ca-file "$LAB_CA" \
		--log-level debug || return
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
	lab_check_eq "$label: answered by the upstream" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
		"$(lab_dig_summary A)"
	lab_check_num "$label: the upstream received the query" "$(lab_upstream_queries)" -gt 0
	lab_check_num "$label: ...from $2" \
		"$(grep -c "info: $2 www\.example\.test\. A IN" "$LAB_DIR/upstream.log")" -gt "$before"
	lab_check_eq "$label: nothing reached the decoy" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "$label: dotgw exits 0 on SIGTERM" 0 "$?"
}

lab_log "the upstream's certificate is for $LAB_AUTH_NAME, not wrong.test"
refused_upstream "wrong name" --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --upstream "$LAB_UP4#wrong.test" \
	--ca-file "$LAB_CA" --log-level debug

lab_log "the upstream's certificate is not signed by --ca-file"
refused_upstream "unrelated CA" --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --upstream "$LAB_UP4#$LAB_AUTH_NAME" \
	--ca-file "$LAB_OTHER_CA" --log-level debug

lab_log "address syntaxes"
working_upstream "$LAB_UP4#$LAB_AUTH_NAME" "$LAB_GW_UP4"
working_upstream "$LAB_UP4@853#$LAB_AUTH_NAME" "$LAB_GW_UP4"
working_upstream "$LAB_UP6#$LAB_AUTH_NAME" "$LAB_GW_UP6"
working_upstream "[$LAB_UP6]#$LAB_AUTH_NAME" "$LAB_GW_UP6"
working_upstream "[$LAB_UP6]@853#$LAB_AUTH_NAME" "$LAB_GW_UP6"

lab_finish
