#!/bin/bash
# forward_split.test.sh - split DNS on a gateway: --forward corp.example=plain:ADDR sends the
# internal names unencrypted to the internal resolver (by explicit opt-in), --forward
# corp.example=asked leaves them alone on their way to the address the client asked; every
# other name goes over DoT. The DoT upstream's log never shows corp.example, and the decoy
# sees only what a client sent it for an "asked" name. Both modes, UDP and TCP; gateway scope,
# then host scope (the gateway's own queries). Also: a truncated plain answer fetched again
# over TCP, metrics by target, DoT targets (N, and an ADDR#NAME upstream outside the default
# set), a group's own rule, and dnstap's FORWARDER messages.
#
#   client --- gw-c [gateway: dotgw --scope gateway] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                    gw-d --- decoy 192.0.2.53 (plain @53)
#                                                    gw-i --- internal 10.8.0.1 (plain @53,
#                                                             serves corp.example)
#
# Usage: forward_split.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=internal.sh
. "$(dirname "$0")/internal.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup
lab_start_internal || lab_bail "lab: starting the internal resolver"
# a second client, in a policy group
CLIENT2=198.51.100.3
ip -n "$NS_CLIENT" addr add "$CLIENT2/24" dev "$LAB_IF_CLIENT"

# ask DESC EXPECTED SERVER NAME DIG-ARGS...: from the client, one A query; compare the summary.
ask()
{
	local desc=$1 want=$2 server=$3 name=$4
	shift 4
	lab_dig "$NS_CLIENT" @"$server" "$name" A +tries=1 "$@"
	lab_check_eq "$desc" "$want" "$(lab_dig_summary A)"
}

for mode in nfqueue tproxy; do
	ARGS=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface "$LAB_GW_IF_CLIENT"
		--query-log)

	lab_log "$mode: --forward corp.example=plain:$LAB_INT4"
	lab_decoy_reset
	: >"$LAB_DIR/upstream.log.mark"
	up_lines=$(wc -l <"$LAB_DIR/upstream.log")
	lab_start_dotgw "${ARGS[@]}" --forward corp.example=plain:"$LAB_INT4" \
		--udp-size-cap 4096 --metrics 127.0.0.1:9853 || lab_finish
	lab_check_match "$mode plain: logged at start as unencrypted" \
		"forward corp.example.: to $LAB_INT4.*UNENCRYPTED" "$(cat "$DOTGW_LOG")"
	ask "$mode plain: corp name asked of the decoy, UDP: the internal server's answer" \
		"NOERROR $LAB_INT_A from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" www.corp.example
	ask "$mode plain: corp name asked of the decoy, TCP: the internal server's answer" \
		"NOERROR $LAB_INT_A from $LAB_DECOY4#53 (TCP)" "$LAB_DECOY4" www.corp.example +tcp
	ask "$mode plain: corp name asked over IPv6: the internal server's answer" \
		"NOERROR $LAB_INT_A from $LAB_DECOY6#53 (UDP)" "$LAB_DECOY6" www.corp.example
	ask "$mode plain: another name: the DoT upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" www.example.test
	ask "$mode plain: another name over TCP: the DoT upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" "$LAB_DECOY4" www.example.test +tcp
	ask "$mode plain: a corp name the internal server does not have: its NXDOMAIN" \
		"NXDOMAIN  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" nothing.corp.example
	# the internal server truncates its UDP answer (1232 octets at most): dotgw asks again
	# over TCP, and the client (4096 octets) gets all of it over UDP
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" big.corp.example TXT +bufsize=4096 +ignore +tries=1
	lab_check_eq "$mode plain: a truncated answer is fetched again over TCP: all 40 records" \
		"NOERROR 40 UDP" "$(lab_dig_status) $(lab_dig_ancount) $(lab_dig_proto)"
	lab_check_nomatch "$mode plain: ... and not truncated" "tc" "$(lab_dig_flags)"
	lab_check_eq "$mode plain: the decoy saw nothing" 0 "$(lab_decoy_count)"
	lab_ok "$mode plain: the internal server saw the corp name" \
		lab_internal_saw nothing.corp.example
	lab_notok "$mode plain: the DoT upstream never saw corp.example" \
		sh -c "tail -n +$((up_lines + 1)) '$LAB_DIR/upstream.log' | grep -qi corp.example"
	lab_ok "$mode plain: the query log says where it went" \
		grep -q "www.corp.example. 1 NOERROR udp plain:$LAB_INT4" "$DOTGW_LOG"
	scrape=$(ip netns exec "$NS_GW" timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9853 &&
		printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3')
	lab_check_match "$mode plain: metrics count the unencrypted target's queries" \
		"^dotgw_forwarded_total\\{target=\"plain:$LAB_INT4:53\",transport=\"unencrypted\"\\} [1-9]" \
		"$scrape"
	if command -v promtool >/dev/null; then
		lab_ok "$mode plain: promtool accepts the exposition with a forward target" \
			sh -c 'sed "1,/^\r$/d" | promtool check metrics >/dev/null 2>&1' <<<"$scrape"
	fi
	# the internal server stops: SERVFAIL, counted
	lab_ns_kill "$NS_INT" unbound
	ask "$mode plain: internal server gone: SERVFAIL" \
		"SERVFAIL  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" gone.corp.example +time=5
	kill -USR1 "$DOTGW_PID"
	lab_wait_until 30 grep -q 'stats:' "$DOTGW_LOG"
	lab_check_num "$mode plain: the failure is counted" "$(lab_dotgw_stat forward_errors)" -ge 1
	lab_stop_dotgw
	lab_check_eq "$mode plain: dotgw exits 0" 0 "$?"
	lab_bg "$NS_INT" "$LAB_DIR/internal.log" unbound -d -c "$LAB_DIR/internal.conf"
	LAB_WAIT_PID=$LAB_BG_PID lab_wait_until 100 lab_internal_answers ||
		lab_bail "internal server restart"

	lab_log "$mode: --forward corp.example=asked"
	lab_decoy_reset
	up_lines=$(wc -l <"$LAB_DIR/upstream.log")
	int_lines=$(wc -l <"$LAB_DIR/internal.log")
	lab_start_dotgw "${ARGS[@]}" --forward corp.example=asked || lab_finish
	ask "$mode asked: corp name asked of the internal server, UDP: its answer" \
		"NOERROR $LAB_INT_A from $LAB_INT4#53 (UDP)" "$LAB_INT4" www.corp.example
	ask "$mode asked: corp name asked of the internal server, TCP: its answer" \
		"NOERROR $LAB_INT_A from $LAB_INT4#53 (TCP)" "$LAB_INT4" www.corp.example +tcp
	ask "$mode asked: over IPv6: its answer" \
		"NOERROR $LAB_INT_A from $LAB_INT6#53 (UDP)" "$LAB_INT6" www.corp.example
	ask "$mode asked: another name asked of the internal server: the DoT upstream's" \
		"NOERROR $LAB_UP_A from $LAB_INT4#53 (UDP)" "$LAB_INT4" www.example.test
	lab_notok "$mode asked: the internal server never saw the other name" \
		sh -c "tail -n +$((int_lines + 1)) '$LAB_DIR/internal.log' | grep -qi www.example.test"
	lab_check_eq "$mode asked: the decoy saw nothing yet" 0 "$(lab_decoy_count)"
	ask "$mode asked: corp name asked of the decoy: the decoy's own answer" \
		"NXDOMAIN  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" www.corp.example
	lab_check_num "$mode asked: that one reached the decoy" "$(lab_decoy_count)" -ge 1
	lab_notok "$mode asked: the DoT upstream never saw corp.example" \
		sh -c "tail -n +$((up_lines + 1)) '$LAB_DIR/upstream.log' | grep -qi corp.example"
	lab_ok "$mode asked: the query log says where it went" \
		grep -Eq "www.corp.example. 1 - udp asked $LAB_INT4(:|@)53" "$DOTGW_LOG"
	lab_stop_dotgw
	lab_check_eq "$mode asked: dotgw exits 0" 0 "$?"
done

# DoT targets: a --forward upstream of its own (the upstream's IPv6 address, the same
# unbound) serves only its suffix; the Nth --upstream by number
lab_log "DoT targets: ADDR#NAME (not in the default set) and N"
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--query-log --upstream-policy round-robin \
	--forward "example.test=[$LAB_UP6]#$LAB_AUTH_NAME" --forward bench.test=1 \
	--group kids="$CLIENT2" --forward kids:other.test=plain:"$LAB_INT4" || lab_finish
ask "DoT target ADDR#NAME: answered" "NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" \
	"$LAB_DECOY4" www.example.test
lab_ok "DoT target ADDR#NAME: the query log names it" \
	grep -q "www.example.test. 1 NOERROR udp \[$LAB_UP6\]@853#$LAB_AUTH_NAME" "$DOTGW_LOG"
for i in 1 2 3 4; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "n$i.bench.test" A +tries=1
done
lab_check_eq "DoT target N: four names answered by upstream 1 only, never the forward one" 4 \
	"$(grep -c "n[1-4].bench.test. 1 NOERROR udp $LAB_UP4@853#$LAB_AUTH_NAME" "$DOTGW_LOG")"
for i in 1 2 3 4; do
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" "x$i.other.test" A +tries=1
done
lab_check_eq "other names (round-robin): the default set only, never the forward one" 4 \
	"$(grep -c "x[1-4].other.test. 1 NXDOMAIN udp $LAB_UP4@853#$LAB_AUTH_NAME" "$DOTGW_LOG")"
# a group's rule holds for its clients only
lab_dig "$NS_CLIENT" -b "$CLIENT2" @"$LAB_DECOY4" kid.other.test A +tries=1
lab_ok "group rule: the group's client's name went to the internal server" \
	lab_internal_saw kid.other.test
lab_ok "group rule: ... and the query log says so" \
	grep -q "kid.other.test. 1 NXDOMAIN udp plain:$LAB_INT4" "$DOTGW_LOG"
lab_stop_dotgw
lab_check_eq "DoT targets: dotgw exits 0" 0 "$?"

# host scope: the gateway's own queries; what dotgw sends on carries the bypass mark, so the
# output chain does not capture it again
for mode in nfqueue tproxy; do
	lab_log "$mode: host scope, --forward corp.example=asked and home.arpa's default"
	lab_decoy_reset
	int_lines=$(wc -l <"$LAB_DIR/internal.log")
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope host \
		--forward corp.example=asked --forward plain.example=plain:"$LAB_INT4" || lab_finish
	hask()
	{
		local desc=$1 want=$2 server=$3 name=$4
		shift 4
		lab_dig "$NS_GW" @"$server" "$name" A +tries=1 "$@"
		lab_check_eq "$desc" "$want" "$(lab_dig_summary A)"
	}
	hask "$mode host: asked, UDP: the internal server's answer" \
		"NOERROR $LAB_INT_A from $LAB_INT4#53 (UDP)" "$LAB_INT4" www.corp.example
	hask "$mode host: asked, TCP: the internal server's answer" \
		"NOERROR $LAB_INT_A from $LAB_INT4#53 (TCP)" "$LAB_INT4" www.corp.example +tcp
	hask "$mode host: plain: the internal server's NXDOMAIN" \
		"NXDOMAIN  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" www.plain.example
	lab_ok "$mode host: plain: it reached the internal server" lab_internal_saw www.plain.example
	hask "$mode host: a private resolver's home.arpa: its answer" \
		"NOERROR 10.8.0.9 from $LAB_INT4#53 (UDP)" "$LAB_INT4" printer.home.arpa
	hask "$mode host: a public address's home.arpa: dotgw's NXDOMAIN" \
		"NXDOMAIN  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" printer.home.arpa
	hask "$mode host: another name asked of the internal server: the DoT upstream's" \
		"NOERROR $LAB_UP_A from $LAB_INT4#53 (UDP)" "$LAB_INT4" www.example.test
	lab_notok "$mode host: the internal server never saw the other name" \
		sh -c "tail -n +$((int_lines + 1)) '$LAB_DIR/internal.log' | grep -qi www.example.test"
	lab_check_eq "$mode host: the decoy saw nothing" 0 "$(lab_decoy_count)"
	lab_stop_dotgw
	lab_check_eq "$mode host: dotgw exits 0" 0 "$?"
done

# dnstap: where each query went, as FORWARDER_QUERY/RESPONSE messages (when the tools exist)
if command -v fstrm_capture >/dev/null && command -v dnstap-ldns >/dev/null; then
	lab_log "dnstap: forwarder messages name the target"
	chmod o+x "$LAB_DIR"
	mkdir -m 755 "$LAB_DIR/tap"
	SOCK="$LAB_DIR/tap/dnstap.sock"
	CAP="$LAB_DIR/tap/capture.fstrm"
	lab_bg "$NS_GW" "$LAB_DIR/fstrm_capture.log" fstrm_capture -t protobuf:dnstap.Dnstap \
		-u "$SOCK" -w "$CAP"
	capture=$LAB_BG_PID
	LAB_WAIT_PID=$capture lab_wait_until 50 test -S "$SOCK" || lab_bail "fstrm_capture"
	chmod 777 "$SOCK"
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
		--dnstap "$SOCK" --forward corp.example=plain:"$LAB_INT4" \
		--forward asked.example=asked || lab_finish
	ask "dnstap: plain" "NOERROR $LAB_INT_A from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" \
		www.corp.example
	ask "dnstap: asked" "NXDOMAIN  from $LAB_DECOY4#53 (UDP)" "$LAB_DECOY4" x.asked.example
	lab_stop_dotgw
	lab_bg_stop "$capture" INT
	ip netns exec "$NS_GW" dnstap-ldns -y -r "$CAP" >"$LAB_DIR/tap/read.yaml" 2>&1
	tap=$(awk '/^  type:/ { t = $2; q = "-" } /query_address:/ { q = $2 }
		/response_address:/ { print t, q, $2 }' "$LAB_DIR/tap/read.yaml")
	lab_check_match "dnstap: FORWARDER_QUERY to the plain target" \
		"^FORWARDER_QUERY - \"?$LAB_INT4" "$tap"
	lab_check_match "dnstap: FORWARDER_RESPONSE from it" "^FORWARDER_RESPONSE - \"?$LAB_INT4" "$tap"
	lab_check_match "dnstap: the asked query leaves from the client to the decoy" \
		"^FORWARDER_QUERY \"?$LAB_CLIENT4\"? \"?$LAB_DECOY4" "$tap"
fi
lab_finish
