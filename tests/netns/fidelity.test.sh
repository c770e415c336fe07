#!/bin/bash
# fidelity.test.sh - every answer through dotgw is the one the upstream gives itself, except for
# the changes README.md lists under "What dotgw changes". A battery of queries, ordinary and odd,
# is asked straight to the upstream (plain DNS, port 53) and then through dotgw (to the decoy's
# address, captured) over the same transport, in tproxy and nfqueue mode, with the cache off and
# on; with the cache on, each query is asked first by another client (198.51.100.3) with other
# EDNS options, so that what is compared is, where the cache may answer, a cache hit. Answers are
# compared after normalising what legitimately differs between two askings (message id, TTLs).
# The set of differing cases must be exactly the README table's.
#
#   client c0 198.51.100.2 (+ .3) --- gw-c [gateway: dotgw --scope gateway] gw-u --- upstream
#                                                                                    203.0.113.2
#   direct:  dig @203.0.113.2  (dotgw not running: nothing captured)   plain @53, DoT @853,
#   through: dig @192.0.2.53   (captured by dotgw, answered over DoT)  zone fid.test
#
# The upstream serves fid.test through an auth-zone for its iterator (for-upstream), so CNAME
# chains come back whole, as from a real resolver; TXT sets sized to end exactly at 512 (no
# EDNS), 1232 and 4096 octets, and 150 A records.
#
# Usage: fidelity.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
lab_require_tools "${LAB_TOOLS[@]}" python3
lab_require_dotgw "${1:-}"
README=$(dirname "$0")/../../README.md
[ -r "$README" ] || lab_skip "needs README.md next to tests/"

CLIENT2=198.51.100.3
lab_tmpdir
ZONE="$LAB_DIR/fid.test.zone"

# fid.test: TXT answers of exactly 512 (no OPT), 1232 and 4096 octets (with an empty OPT RR).
python3 - "$ZONE" <<'PY'
import sys

def txt_rrs(owner, total, opt):
	# header 12, question (owner + type + class), answers with a compressed owner (2 octets),
	# TYPE CLASS TTL RDLENGTH (10), one string (1 + len); an empty OPT RR is 11 octets
	qname = sum(len(l) + 1 for l in owner.split('.')) + 1
	left = total - 12 - qname - 4 - (11 if opt else 0)
	out, i = [], 0
	while left > 0:
		n = min(left, 2 + 10 + 1 + 200)
		if left - n and left - n < 13 + 1:
			n = left - 14
		slen = n - 13
		s = ('%s-%02d-' % (owner.split('.')[0], i)) + 'x' * slen
		out.append('%s. TXT "%s"' % (owner, s[:slen]))
		left -= n
		i += 1
	return out

lines = [
	'$TTL 3600',
	'fid.test. SOA ns.fid.test. host.fid.test. 1 3600 600 86400 300',
	'fid.test. NS ns.fid.test.',
	'fid.test. MX 10 mail.fid.test.',
	'ns.fid.test. A 203.0.113.2',
	'www.fid.test. A 203.0.113.10',
	'www.fid.test. AAAA 2001:db8:113::10',
	'mail.fid.test. A 203.0.113.25',
	'alias.fid.test. CNAME www.fid.test.',
	'chain1.fid.test. CNAME chain2.fid.test.',
	'chain2.fid.test. CNAME www.fid.test.',
	'unk.fid.test. TYPE65300 \\# 4 0a0b0c0d',
]
lines += txt_rrs('t512.fid.test', 512, False)
lines += txt_rrs('t1232.fid.test', 1232, True)
lines += txt_rrs('t4096.fid.test', 4096, True)
lines += ['many.fid.test. A 203.0.113.%d' % i for i in range(100, 250)]
open(sys.argv[1], 'w').write('\n'.join(lines) + '\n')
PY
chmod 644 "$ZONE"

# shellcheck disable=SC2034 # read by lab_start_upstream
LAB_UP_EXTRA_CONF="
	local-zone: \"fid.test.\" transparent
	minimal-responses: yes
	nsid: \"ascii_upstream\"
	edns-buffer-size: 4096
	max-udp-size: 4096
auth-zone:
	name: \"fid.test.\"
	zonefile: \"$ZONE\"
	for-upstream: yes
	for-downstream: no
	fallback-enabled: no"
lab_setup
ip -n "$NS_CLIENT" addr add "$CLIENT2/24" dev "$LAB_IF_CLIENT"

# The battery: ID, then dig arguments (name, type, options). +nocookie unless a case asks
# for one: dig invents a new client cookie each time.
CASES=(
	"a www.fid.test A"
	"aaaa www.fid.test AAAA"
	"mixed-case WwW.FiD.TeSt A"
	"cname alias.fid.test A"
	"cname-chain chain1.fid.test A"
	"mx fid.test MX"
	"nxdomain nope.fid.test A"
	"nodata www.fid.test TXT"
	"no-edns www.fid.test A +noedns"
	"do www.fid.test A +dnssec"
	"cd www.fid.test A +cdflag"
	"ad www.fid.test A +adflag"
	"rd0 www.fid.test A +norecurse"
	"rd0-cname alias.fid.test A +norecurse"
	"z-flag www.fid.test A +zflag"
	"nsid www.fid.test A +nsid"
	"cookie www.fid.test A +cookie=0102030405060708"
	"edns-v1 www.fid.test A +edns=1 +noednsnegotiation"
	"edns-v1-nx nope.fid.test A +edns=1 +noednsnegotiation"
	"unknown-option www.fid.test A +ednsopt=65001:abcd"
	"unknown-ednsflag www.fid.test A +ednsflags=0x0100"
	"ecs www.fid.test A +subnet=203.0.113.0/24"
	"padding www.fid.test A +padding=128"
	"t512-noedns-udp t512.fid.test TXT +noedns"
	"t512-bufsize512-udp t512.fid.test TXT +bufsize=512"
	"t1232-bufsize1232-udp t1232.fid.test TXT +bufsize=1232"
	"t1232-bufsize512-udp t1232.fid.test TXT +bufsize=512"
	"t4096-bufsize4096-udp t4096.fid.test TXT +bufsize=4096"
	"t4096-bufsize1232-udp t4096.fid.test TXT +bufsize=1232"
	"t512-noedns-tcp t512.fid.test TXT +noedns +tcp"
	"t1232-bufsize1232-tcp t1232.fid.test TXT +bufsize=1232 +tcp"
	"t4096-bufsize4096-tcp t4096.fid.test TXT +bufsize=4096 +tcp"
	"many-bufsize1232-udp many.fid.test A +bufsize=1232"
	"many-bufsize4096-udp many.fid.test A +bufsize=4096"
	"many-noedns-tcp many.fid.test A +noedns +tcp"
	"a-tcp www.fid.test A +tcp"
	"nxdomain-tcp nope.fid.test A +tcp"
	"ch-version.bind version.bind TXT -c CH"
	"ch-id.server id.server TXT -c CH"
	"any fid.test ANY"
	"unknown-type unk.fid.test TYPE65300"
	"unknown-type-nodata www.fid.test TYPE65301"
	"opcode-notify fid.test SOA +opcode=notify +norecurse"
	"opcode-update fid.test SOA +opcode=update +norecurse"
	"opcode-status fid.test SOA +opcode=status"
	"header-only-edns fid.test SOA +header-only"
	"header-only-noedns fid.test SOA +header-only +noedns"
	"axfr fid.test AXFR"
)

# ask OUT SERVER [dig options...]: run every case once, each answer (normalised) in OUT/ID.
# PRIME=1 first asks each case from CLIENT2 with other EDNS options (same cache key).
ask()
{
	local out=$1 server=$2 c id args prime
	mkdir -p "$out"
	for c in "${CASES[@]}"; do
		id=${c%% *}
		read -r -a args <<<"${c#* }"
		if [ "${PRIME:-0}" = 1 ]; then
			prime=(+cookie=a1a2a3a4a5a6a7a8)
			[[ " ${args[*]} " == *" +noedns "* ]] && prime=()
			ip netns exec "$NS_CLIENT" timeout 10 dig +time=2 +tries=1 +ignore -b "$CLIENT2" \
				@"$server" "${args[@]}" "${prime[@]}" +nsid +subnet=192.0.2.0/24 \
				+ednsopt=65002:ffff >/dev/null 2>&1
			ip netns exec "$NS_CLIENT" timeout 10 dig +time=2 +tries=1 +ignore -b "$CLIENT2" \
				@"$server" "${args[@]}" "${prime[@]}" >/dev/null 2>&1
		fi
		[[ " ${args[*]} " == *" +cookie="* ]] || args+=(+nocookie)
		ip netns exec "$NS_CLIENT" timeout 10 dig +time=2 +tries=1 +ignore +noall +comments \
			+question +answer +authority +additional -b "$LAB_CLIENT4" @"$server" \
			"${args[@]}" 2>&1 | normalise >"$out/$id"
	done
}

# normalise: drop the message id and the TTLs (they count down in caches), keep everything else.
normalise()
{
	sed -E -e 's/, id: [0-9]+$//' -e '/^;; (Query time|SERVER|WHEN|MSG SIZE)/d' \
		-e '/^;; Got answer/d' |
		awk '!/^;/ && NF >= 5 { $2 = "TTL" } { print }'
}

DIRECT="$LAB_DIR/direct"
lab_log "asking the upstream directly (twice: the second round, with its cache warm, counts)"
ask "$LAB_DIR/warmup" "$LAB_UP4"
ask "$DIRECT" "$LAB_UP4"
# a case the upstream leaves unanswered would compare "no answer" with "no answer": same
lab_check_eq "the upstream answered every case directly" "" \
	"$(cd "$DIRECT" && grep -L -e '->>HEADER<<-' -- * | paste -sd ' ')"
lab_check_match "the upstream answers the TXT set of exactly 4096 octets whole" \
	'ANSWER: 16,|ANSWER: 1[0-9],|ANSWER: 2[0-9],' "$(cat "$DIRECT/t4096-bufsize4096-udp")"
lab_check_match "the upstream follows CNAME chains" 'chain2\.fid\.test\..*CNAME' \
	"$(cat "$DIRECT/cname-chain")"

# Expected differences from README's table: "| `case` | when | ..." rows.
EXPECTED=$(sed -n '/^### What dotgw changes/,/^#/p' "$README" |
	sed -nE 's/^\| `([a-z0-9.-]+)` \| ([a-z, /]+) \|.*/\1 \2/p' | sort)
CONFIGS=("tproxy off" "tproxy on" "nfqueue off" "nfqueue on")

for cfg in "${CONFIGS[@]}"; do
	read -r mode cache <<<"$cfg"
	extra=()
	[ "$cache" = off ] && extra=(--cache-size 0)
	lab_start_dotgw "${LAB_DOTGW_ARGS[@]}" --mode "$mode" --scope gateway \
		--interface "$LAB_GW_IF_CLIENT" --query-log \
		"${extra[@]}" || lab_finish
	PRIME=0
	[ "$cache" = on ] && PRIME=1
	PRIME=$PRIME ask "$LAB_DIR/$mode-$cache" "$LAB_DECOY4"
	lab_stop_dotgw
	lab_check_eq "$mode, cache $cache: dotgw exits 0 on SIGTERM" 0 "$?"
	hits=$(grep -Ec "query $LAB_CLIENT4[:#][0-9]+ .* (udp|tcp) cache " "$DOTGW_LOG")
	if [ "$cache" = on ]; then
		# every case a stub asks with EDNS version 0 and at most a cookie: 33 of them
		lab_check_num "$mode: the tested queries of 33 cases were cache hits" "$hits" -eq 33
	else
		lab_check_eq "$mode, cache off: nothing answered from a cache" 0 "$hits"
	fi
done

# The table, and the set of differences.
printf '# %-24s %-12s %-12s %-12s %-12s\n' case "tproxy" "tproxy+cache" "nfqueue" \
	"nfqueue+cache"
ACTUAL=
for c in "${CASES[@]}"; do
	id=${c%% *}
	row=() differs=()
	for cfg in "${CONFIGS[@]}"; do
		read -r mode cache <<<"$cfg"
		if cmp -s "$DIRECT/$id" "$LAB_DIR/$mode-$cache/$id"; then
			row+=(same)
		else
			row+=(differs)
			differs+=("$mode/$cache")
		fi
	done
	when=
	case "${differs[*]}" in
	"") ;;
	"tproxy/off tproxy/on nfqueue/off nfqueue/on") when=always ;;
	"tproxy/on nfqueue/on") when=cache ;;
	*) when=$(printf '%s\n' "${differs[@]}" | paste -sd, -) ;;
	esac
	if [ -n "$when" ]; then
		ACTUAL+="$id $when"$'\n'
		grep -qx "$id $when" <<<"$EXPECTED" && row=("${row[@]/differs/by design}")
	fi
	printf '# %-24s %-12s %-12s %-12s %-12s\n' "$id" "${row[@]}"
done
ACTUAL=$(printf '%s' "$ACTUAL" | sort)

for id in $(printf '%s\n' "$ACTUAL" "$EXPECTED" | sort | uniq -u | awk '{ print $1 }' | sort -u); do
	lab_log "case $id: direct (<) vs through dotgw (>), first configuration that differs:"
	for cfg in "${CONFIGS[@]}"; do
		read -r mode cache <<<"$cfg"
		if ! cmp -s "$DIRECT/$id" "$LAB_DIR/$mode-$cache/$id"; then
			lab_log "$mode, cache $cache:"
			diff "$DIRECT/$id" "$LAB_DIR/$mode-$cache/$id" | sed 's/^/#   /' | head -n 30
			break
		fi
	done
done
lab_check_num "at least 40 cases" "${#CASES[@]}" -ge 40
lab_check_eq "the answers that differ are exactly README's \"What dotgw changes\"" \
	"$EXPECTED" "$ACTUAL"
lab_finish
