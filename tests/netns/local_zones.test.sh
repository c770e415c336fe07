#!/bin/bash
# local_zones.test.sh - the locally served zones (RFC 6303 reverse zones, home.arpa, local,
# localhost, invalid, resolver.arpa) never reach the DoT upstream. Asked of a private address
# (the LAN's own server, here the internal resolver), the query goes there untouched; asked of
# a public one (the decoy's TEST-NET address), dotgw answers itself: NXDOMAIN, NODATA or the
# RFC 6761 answer, with the zone's SOA (RFC 6303 3) in the authority section. resolver.arpa
# is answered by dotgw wherever it was asked (no DDR designation: README). --no-local-zones
# forwards them to the upstream again. Both modes, UDP, and TCP for a sample.
#
#   client --- gw-c [gateway: dotgw --scope gateway] gw-u --- upstream 203.0.113.2 (DoT @853)
#                                                    gw-d --- decoy 192.0.2.53 (public)
#                                                    gw-i --- internal 10.8.0.1 (private)
#
# Usage: local_zones.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=internal.sh
. "$(dirname "$0")/internal.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"
lab_setup
lab_start_internal || lab_bail "lab: starting the internal resolver"

SOA_TAIL="nobody.invalid. 1 3600 1200 604800 10800"
REV4=5.0.8.10.in-addr.arpa
REV6=5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.0.0.0.0.0.d.f.ip6.arpa

# The authority section of the last answer, one record per line: "OWNER TTL TYPE RDATA...".
authority()
{
	printf '%s\n' "$LAB_OUT" | awk '
		/^;; AUTHORITY SECTION:/ { s = 1; next }
		s && /^$/ { s = 0 }
		s { $3 = ""; $0 = $0; print }'
}

# q DESC EXPECTED SERVER DIG-ARGS...: one query from the client; "STATUS ANSWER-RDATA"
# compared, where the answer's records are joined with commas.
q()
{
	local desc=$1 want=$2 server=$3
	shift 3
	lab_dig "$NS_CLIENT" @"$server" +tries=1 "$@"
	lab_check_eq "$desc" "$want" "$(lab_dig_status) $(printf '%s\n' "$LAB_OUT" | awk '
		/^;; ANSWER SECTION:/ { s = 1; next }
		s && /^$/ { s = 0 }
		s { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' | paste -sd, -)"
}

# soa DESC ZONE: the last answer's authority section is ZONE's SOA, as RFC 6303 3 says.
soa()
{
	lab_check_eq "$1: the zone's SOA in the authority section" \
		"$2 300 SOA $2 $SOA_TAIL" "$(authority | tr -s ' ')"
}

NAMES="$REV4 $REV6 printer.home.arpa printer.local localhost x.invalid _dns.resolver.arpa"

for mode in nfqueue tproxy; do
	ARGS=("${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway --interface "$LAB_GW_IF_CLIENT"
		--query-log)
	lab_log "$mode: default (local zones on)"
	lab_decoy_reset
	up_lines=$(wc -l <"$LAB_DIR/upstream.log")
	int_lines=$(wc -l <"$LAB_DIR/internal.log")
	lab_start_dotgw "${ARGS[@]}" || lab_finish

	# asked of the private internal server: it answers (its data differs from dotgw's)
	q "$mode private: v4 reverse zone reaches the internal server" \
		"NOERROR printer.corp.example." "$LAB_INT4" -x 10.8.0.5
	q "$mode private: v6 reverse zone (d.f.ip6.arpa) reaches it" \
		"NOERROR printer6.corp.example." "$LAB_INT4" -x fd00:8::5
	q "$mode private: home.arpa reaches it" "NOERROR 10.8.0.9" "$LAB_INT4" printer.home.arpa A
	q "$mode private: local reaches it" "NOERROR 10.8.0.10" "$LAB_INT4" printer.local A
	q "$mode private: localhost reaches it" "NOERROR 10.8.0.12" "$LAB_INT4" localhost A
	q "$mode private: invalid reaches it" "NOERROR 10.8.0.11" "$LAB_INT4" x.invalid A
	q "$mode private, TCP: home.arpa reaches it" "NOERROR 10.8.0.9" "$LAB_INT4" \
		printer.home.arpa A +tcp
	q "$mode private, IPv6: home.arpa reaches it" "NOERROR 10.8.0.9" "$LAB_INT6" \
		printer.home.arpa A
	q "$mode private: _dns.resolver.arpa is dotgw's: no designation" "NOERROR " \
		"$LAB_INT4" _dns.resolver.arpa TXT
	soa "$mode private: _dns.resolver.arpa" resolver.arpa.
	lab_notok "$mode private: the internal server never saw resolver.arpa" \
		sh -c "tail -n +$((int_lines + 1)) '$LAB_DIR/internal.log' | grep -qi resolver.arpa"

	# asked of a public address: dotgw's own answer
	q "$mode public: v4 reverse zone: NXDOMAIN" "NXDOMAIN " "$LAB_DECOY4" -x 10.8.0.5
	soa "$mode public: v4 reverse" 10.in-addr.arpa.
	q "$mode public: v6 reverse zone: NXDOMAIN" "NXDOMAIN " "$LAB_DECOY4" -x fd00:8::5
	soa "$mode public: v6 reverse" d.f.ip6.arpa.
	q "$mode public, TCP: v6 reverse zone: NXDOMAIN" "NXDOMAIN " "$LAB_DECOY4" -x fd00:8::5 +tcp
	soa "$mode public, TCP: v6 reverse" d.f.ip6.arpa.
	q "$mode public: the 10.in-addr.arpa apex SOA" "NOERROR 10.in-addr.arpa. $SOA_TAIL" \
		"$LAB_DECOY4" 10.in-addr.arpa SOA
	q "$mode public: home.arpa: NXDOMAIN" "NXDOMAIN " "$LAB_DECOY4" printer.home.arpa A
	soa "$mode public: home.arpa" home.arpa.
	q "$mode public: local: NXDOMAIN (RFC 6762 22.1)" "NXDOMAIN " "$LAB_DECOY4" printer.local A
	soa "$mode public: local" local.
	q "$mode public: localhost A: 127.0.0.1 (RFC 6761 6.3)" "NOERROR 127.0.0.1" \
		"$LAB_DECOY4" localhost A
	q "$mode public: www.localhost AAAA: ::1" "NOERROR ::1" "$LAB_DECOY6" www.localhost AAAA
	q "$mode public: localhost MX: NODATA" "NOERROR " "$LAB_DECOY4" localhost MX
	soa "$mode public: localhost MX" localhost.
	q "$mode public: invalid: NXDOMAIN (RFC 6761 6.4)" "NXDOMAIN " "$LAB_DECOY4" x.invalid A
	soa "$mode public: invalid" invalid.
	q "$mode public: _dns.resolver.arpa SVCB: no designation" "NOERROR " "$LAB_DECOY4" \
		_dns.resolver.arpa TYPE64
	soa "$mode public: _dns.resolver.arpa" resolver.arpa.
	lab_check_eq "$mode: the decoy saw none of them" 0 "$(lab_decoy_count)"
	for n in $NAMES 10.in-addr.arpa www.localhost; do
		lab_notok "$mode: the DoT upstream never saw $n" \
			sh -c "tail -n +$((up_lines + 1)) '$LAB_DIR/upstream.log' | grep -qiF ' $n. '"
	done
	lab_ok "$mode: the query log names dotgw's own answers" \
		grep -q "printer.home.arpa. 1 NXDOMAIN udp local" "$DOTGW_LOG"
	lab_stop_dotgw
	lab_check_eq "$mode: dotgw exits 0" 0 "$?"
done

lab_log "--no-local-zones: forwarded to the upstream like other names"
up_lines=$(wc -l <"$LAB_DIR/upstream.log")
lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--no-local-zones || lab_finish
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" +tries=1 printer.home.arpa A
lab_dig "$NS_CLIENT" @"$LAB_INT4" +tries=1 -x 10.8.0.5
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" +tries=1 _dns.resolver.arpa TYPE64
for n in printer.home.arpa $REV4 _dns.resolver.arpa; do
	lab_ok "--no-local-zones: the DoT upstream saw $n" \
		sh -c "tail -n +$((up_lines + 1)) '$LAB_DIR/upstream.log' | grep -qiF ' $n. '"
done
lab_stop_dotgw
lab_finish
