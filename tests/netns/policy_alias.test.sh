#!/bin/bash
# policy_alias.test.sh - a group's rules hold for the names an answer leads to, not only for the
# question: an allowed name that is a CNAME (or under a DNAME) of a denied one gets the deny
# rule's answer, never the denied name's address; from the upstream and from the cache (filled
# by a client in no group), over UDP and TCP; an allow list refuses an alias that leaves it.
#
#   c0 198.51.100.2 (group kids)   --.
#   c0 198.51.100.3 (no group)     ---+- gw-c [gateway: dotgw] gw-u --- upstream: unbound, the
#   c0 198.51.100.4 (group web)    --'                                  zone cloak.test as an
#                                                                        auth-zone for its
#                                                                        iterator (the whole
#                                                                        chain comes back)
#
# Usage: policy_alias.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}"
lab_require_dotgw "${1:-}"

lab_tmpdir
cat >"$LAB_DIR/cloak.zone" <<'EOF'
$ORIGIN cloak.test.
$TTL 300
@		SOA	ns.cloak.test. admin.cloak.test. 1 3600 600 86400 60
@		NS	ns.cloak.test.
ns		A	203.0.113.2
t.denied	A	203.0.113.66
a.sink		A	203.0.113.67
fine		A	203.0.113.68
out		A	203.0.113.69
www		CNAME	hop.cloak.test.
hop		CNAME	t.denied.cloak.test.
www2		CNAME	t.denied.cloak.test.
www3		CNAME	t.denied.cloak.test.
s		CNAME	a.sink.cloak.test.
ok		CNAME	fine.cloak.test.
dn		DNAME	denied.cloak.test.
www.ok		CNAME	fine.cloak.test.
x.ok		CNAME	out.cloak.test.
EOF
chmod 644 "$LAB_DIR/cloak.zone"
LAB_UP_EXTRA_CONF="server:
	local-zone: \"cloak.test.\" transparent
auth-zone:
	name: \"cloak.test.\"
	zonefile: \"$LAB_DIR/cloak.zone\"
	for-upstream: yes
	for-downstream: no
	fallback-enabled: no"
lab_setup

for a in 198.51.100.3 198.51.100.4; do
	ip -n "$NS_CLIENT" addr add "$a/24" dev "$LAB_IF_CLIENT" || lab_bail "cannot add $a"
done

# ask FROM NAME [DIG-OPTION...]: an A query from the client address FROM to the decoy address
ask()
{
	local from=$1 name=$2
	shift 2
	lab_dig "$NS_CLIENT" -b "$from" @"$LAB_DECOY4" "$name" A +tries=1 +time=3 "$@"
}

# The upstream itself answers the whole chain (else this test would prove nothing).
lab_dig "$NS_UP" @"$LAB_UP4" www.cloak.test A
lab_check_eq "the upstream follows the chain itself" \
	"NOERROR hop.cloak.test.,t.denied.cloak.test.|203.0.113.66" \
	"$(lab_dig_status) $(lab_dig_rdata CNAME | paste -sd, -)|$(lab_dig_rdata A)"

lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --scope gateway --interface "$LAB_GW_IF_CLIENT" \
	--group kids=198.51.100.2/32 --deny kids:denied.cloak.test \
	--deny kids:sink.cloak.test=192.0.2.99 \
	--group web=198.51.100.4/32 --allow web:ok.cloak.test --allow web:fine.cloak.test ||
	lab_finish

lab_log "kids: the denied name itself, and aliases of it"
ask 198.51.100.2 t.denied.cloak.test
lab_check_eq "the denied name is NXDOMAIN" NXDOMAIN "$(lab_dig_status)"
ask 198.51.100.2 www.cloak.test
lab_check_eq "a CNAME chain to the denied name: NXDOMAIN, no address" "NXDOMAIN " \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask 198.51.100.2 www3.cloak.test +tcp
lab_check_eq "the same over TCP" "NXDOMAIN  (TCP)" \
	"$(lab_dig_status) $(lab_dig_rdata A) ($(lab_dig_proto))"
ask 198.51.100.2 t.dn.cloak.test
lab_check_eq "a DNAME into the denied suffix: NXDOMAIN, no address" "NXDOMAIN " \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask 198.51.100.2 s.cloak.test
lab_check_eq "a CNAME to a sinkholed name: the sinkhole address" "NOERROR 192.0.2.99" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask 198.51.100.2 ok.cloak.test
lab_check_eq "a CNAME to an allowed name resolves" "NOERROR 203.0.113.68" \
	"$(lab_dig_status) $(lab_dig_rdata A)"

lab_log "the cache: a client in no group fills it, kids hit it"
ask 198.51.100.3 www2.cloak.test
lab_check_eq "no group: the alias resolves" "NOERROR 203.0.113.66" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
up0=$(lab_upstream_queries)
ask 198.51.100.2 www2.cloak.test
lab_check_eq "kids: the cached alias is NXDOMAIN, no address" "NXDOMAIN " \
	"$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_eq "...answered from the cache (the upstream was not asked)" "$up0" \
	"$(lab_upstream_queries)"
ask 198.51.100.3 www2.cloak.test
lab_check_eq "no group: still the address (from the cache)" "NOERROR 203.0.113.66" \
	"$(lab_dig_status) $(lab_dig_rdata A)"

lab_log "web: an allow list"
ask 198.51.100.4 www.ok.cloak.test
lab_check_eq "an alias that stays in the allow list resolves" "NOERROR 203.0.113.68" \
	"$(lab_dig_status) $(lab_dig_rdata A)"
ask 198.51.100.4 x.ok.cloak.test
lab_check_eq "an alias that leaves the allow list is REFUSED" "REFUSED " \
	"$(lab_dig_status) $(lab_dig_rdata A)"

kill -USR1 "$DOTGW_PID"
lab_wait_until 30 grep -q stats: "$DOTGW_LOG"
alias=$(lab_dotgw_stat policy_alias)
lab_check_num "policy_alias counts the answers withheld" "${alias:-0}" -ge 6
lab_check_eq "the decoy saw nothing" 0 "$(lab_decoy_count)"

lab_stop_dotgw
lab_finish
