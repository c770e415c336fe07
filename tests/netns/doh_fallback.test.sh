#!/bin/bash
# doh_fallback.test.sh - a DoT upstream whose port 853 becomes reachable again after dotgw fell
# back to its DNS-over-HTTPS fallback: within the re-probe interval (--doh-reprobe 2 here; 60 s
# by default) dotgw tries 853, logs the move back, and later queries reach the upstream over
# DoT, not HTTPS. (The fallback itself, and --doh-fallback no, are in doh.test.sh.)
#
#   client --- gw-c [gateway: dotgw, DoT upstream] gw-u --- upstream 203.0.113.2
#                                                           unbound: DoT @853, DoH @443;
#                                                           nft: 853 dropped, then not
#                                                  gw-d --- decoy 192.0.2.53 (must see nothing)
#
# Usage: doh_fallback.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
LAB_UP_EXTRA_CONF="	interface: $LAB_UP4@443
	https-port: 443
	http-endpoint: \"/dns-query\"
	extended-statistics: yes"
lab_setup

lab_require_upstream_doh

printf '%s\n' 'table inet block853 {' 'chain input {' 'type filter hook input priority -10;' \
	'tcp dport 853 counter drop' '}' '}' >"$LAB_DIR/block853.nft"
lab_in "$NS_UP" nft -f "$LAB_DIR/block853.nft" || lab_bail "blocking 853"
lab_upstream_reset # the kdig check above was an HTTPS query
lab_start_dotgw --mode tproxy --scope both --interface "$LAB_GW_IF_CLIENT" --ca-file "$LAB_CA" \
	--log-level debug --cache-size 0 --upstream "$LAB_UP4#$LAB_AUTH_NAME" --doh-reprobe 2 ||
	lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" q0.bench.test A
lab_check_eq "853 blocked: answered (over DoH)" "NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" \
	"$(lab_dig_summary A)"
lab_check_num "853 blocked: the upstream counted an HTTPS query" "$(lab_upstream_stat num.query.https)" -ge 1
lab_check_match "853 blocked: the switch names the re-probe interval (--doh-reprobe)" \
	"using its DNS-over-HTTPS fallback .*trying 853 again every 2 s" "$(cat "$DOTGW_LOG")"

lab_in "$NS_UP" nft delete table inet block853 || lab_bail "unblocking 853"
lab_log "853 unblocked; a query every 0.5 s until dotgw moves back (at most 20 s)"
back=0
for ((i = 1; i <= 40; i++)); do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "w$i.bench.test" A
	if grep -q 'port 853 works again; back to DNS-over-TLS' "$DOTGW_LOG"; then
		back=1
		break
	fi
	lab_sleep 0.5
done
lab_check_eq "853 back: dotgw logs the move back to DoT" 1 "$back"
lab_upstream_reset
for ((i = 0; i < 4; i++)); do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "after$i.bench.test" A
	lab_check_eq "853 back: query $i answered" "NOERROR 203.0.113.99 from $LAB_DECOY4#53 (UDP)" \
		"$(lab_dig_summary A)"
done
lab_check_num "853 back: the upstream got them over TLS" "$(lab_upstream_stat num.query.tls)" -ge 4
lab_check_eq "853 back: ...none over HTTPS" 0 "$(lab_upstream_stat num.query.https)"
lab_check_eq "nothing reached the decoy" 0 "$(lab_decoy_count)"
lab_stop_dotgw
lab_check_eq "dotgw exits 0 on SIGTERM" 0 "$?"
lab_finish
