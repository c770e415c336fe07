#!/bin/bash
# lib.sh - the lab shared by dotgw's network-namespace integration tests (tests/netns/*.test.sh
# and try-it.sh). Source it, then call lab_require_root, lab_require_tools, lab_require_dotgw
# and lab_setup.
#
#      client                      gateway (runs dotgw)                    upstream
#  +-----------------+    +-------------------------------------+    +--------------------+
#  | c0              |    | gw-c                           gw-u |    | u0                 |
#  | 198.51.100.2/24 +----+ 198.51.100.1/24     203.0.113.1/24  +----+ 203.0.113.2/24     |
#  | 2001:db8:100::2 |    | 2001:db8:100::1     2001:db8:113::1 |    | 2001:db8:113::2    |
#  | default via gw  |    |                                     |    | unbound: DoT @853  |
#  +-----------------+    | forwarding on (v4, v6),             |    | (cert: dot.test),  |
#                         | no default route                    |    | plain DNS @53      |
#                         |                gw-d                 |    +--------------------+
#                         |                192.0.2.1/24         |
#                         |                2001:db8:53::1/64    |        decoy
#                         +------------------+------------------+    +--------------------+
#                                            |                       | d0 192.0.2.53/24   |
#                                            +-----------------------+ 2001:db8:53::53/64 |
#                                                                    | unbound: plain @53 |
#                                                                    | (other answers);   |
#                                                                    | nft counts every   |
#                                                                    | port-53 packet in  |
#                                                                    +--------------------+
#
# Everything lives in namespaces created here, with names unique to this run
# (dotgw-PID-RANDOM-ROLE); nothing is added to the machine's own namespace and no route leads
# out of the lab. The EXIT trap kills every process in those namespaces, deletes them and
# removes the temporary directory, also when a test fails midway or is interrupted.
#
# Data: upstream  www.example.test A 203.0.113.80, AAAA 2001:db8:113::80,
#                 big.example.test 40 TXT of 60 characters (answer > 2000 octets),
#                 *.bench.test and bench.test A 203.0.113.99;
#       decoy     www.example.test A 192.0.2.66, AAAA 2001:db8:53::66, big.example.test 1 TXT.
# Every other name is NXDOMAIN on both: neither server ever recurses.
#
# Checks (lab_ok, lab_check_*) count passes and failures; lab_finish prints
# "N passed, N failed" and exits 1 if anything failed. Exit 77 means skipped.
#
# Environment: LAB_UP_EXTRA_CONF (unbound configuration text appended to the upstream's server
# clause, after the data above: a test may add settings, local zones or an auth-zone clause),
# LAB_PROC_TIMEOUT (seconds a background process may live, default 300),
# LAB_KEEP=1 (keep the temporary directory for inspection).

# LAB_UP_VOID_CONF: for LAB_UP_EXTRA_CONF, the upstream forwards void.test to 203.0.113.250,
# a host that does not exist: its names are never answered (they stay open at the upstream)
# shellcheck disable=SC2034 # used by the tests that source this file
LAB_UP_VOID_CONF="server:
	local-zone: \"void.test.\" transparent
forward-zone:
	name: \"void.test.\"
	forward-addr: 203.0.113.250"

LAB_ID="dotgw-$$-$RANDOM"
LAB_DIR=
LAB_NAMESPACES=()
LAB_BG_PIDS=()
LAB_PASSED=0
LAB_FAILED=0
LAB_CLEANED=0
LAB_OUT=
LAB_RC=0
LAB_CMD=
LAB_PROC_TIMEOUT=${LAB_PROC_TIMEOUT:-300}
LAB_RUN_TIMEOUT=30
# What lab_setup needs; tests add their own: lab_require_tools "${LAB_TOOLS[@]}" tcpdump
# shellcheck disable=SC2034 # used by the tests that source this file
LAB_TOOLS=(ip nft unbound unbound-control dig kdig openssl timeout pgrep sysctl)

# Interface names inside the namespaces (fixed: namespaces keep them apart).
LAB_IF_CLIENT=c0
LAB_GW_IF_CLIENT=gw-c
LAB_GW_IF_UP=gw-u
LAB_GW_IF_DECOY=gw-d
LAB_IF_UP=u0
LAB_IF_DECOY=d0

LAB_CLIENT4=198.51.100.2
LAB_CLIENT6=2001:db8:100::2
LAB_GW_CLIENT4=198.51.100.1
LAB_GW_CLIENT6=2001:db8:100::1
LAB_GW_UP4=203.0.113.1
LAB_GW_UP6=2001:db8:113::1
LAB_GW_DECOY4=192.0.2.1
LAB_GW_DECOY6=2001:db8:53::1
LAB_UP4=203.0.113.2
LAB_UP6=2001:db8:113::2
LAB_DECOY4=192.0.2.53
LAB_DECOY6=2001:db8:53::53
LAB_AUTH_NAME=dot.test

# What the servers answer for www.example.test.
LAB_UP_A=203.0.113.80
LAB_UP_AAAA=2001:db8:113::80
LAB_DECOY_A=192.0.2.66
LAB_DECOY_AAAA=2001:db8:53::66
LAB_BIG_TXT_COUNT=40

export NS_CLIENT NS_GW NS_UP NS_DECOY DOTGW LAB_CA LAB_OTHER_CA LAB_DIR

# ---------------------------------------------------------------------------------------------
# Messages and checks

lab_log()
{
	printf '# %s\n' "$*"
}

# Indent a block of text for a failure report.
lab_indent()
{
	sed 's/^/  | /'
}

lab_pass()
{
	LAB_PASSED=$((LAB_PASSED + 1))
	printf 'ok    %s\n' "$1"
}

# lab_fail DESC [DETAIL...]: count a failure and print what is known: the detail lines, the
# output of the last lab_dig / lab_run, and the tail of dotgw's log.
lab_fail()
{
	local desc=$1 line
	shift
	LAB_FAILED=$((LAB_FAILED + 1))
	printf 'FAIL  %s\n' "$desc"
	for line in "$@"; do
		printf '%s\n' "$line" | sed 's/^/      /'
	done
	if [ -n "$LAB_CMD" ]; then
		printf '      last command (exit %s): %s\n' "$LAB_RC" "$LAB_CMD"
		printf '%s\n' "$LAB_OUT" | tail -n 40 | lab_indent
	fi
	if [ -n "${DOTGW_LOG:-}" ] && [ -s "$DOTGW_LOG" ]; then
		# The same tail once is enough.
		local sum
		sum=$(tail -n 25 "$DOTGW_LOG" | cksum)
		if [ "$sum" = "${LAB_LOG_SHOWN:-}" ]; then
			printf '      (the tail of %s is as shown above)\n' "$DOTGW_LOG"
		else
			printf '      tail of %s:\n' "$DOTGW_LOG"
			tail -n 25 "$DOTGW_LOG" | lab_indent
			LAB_LOG_SHOWN=$sum
		fi
	fi
}

# lab_ok DESC CMD...: passes when CMD succeeds.
lab_ok()
{
	local desc=$1
	shift
	if "$@"; then
		lab_pass "$desc"
	else
		lab_fail "$desc" "command failed: $*"
	fi
}

# lab_notok DESC CMD...: passes when CMD fails.
lab_notok()
{
	local desc=$1
	shift
	if "$@"; then
		lab_fail "$desc" "command unexpectedly succeeded: $*"
	else
		lab_pass "$desc"
	fi
}

# lab_check_eq DESC EXPECTED ACTUAL
lab_check_eq()
{
	if [ "$2" = "$3" ]; then
		lab_pass "$1"
	else
		lab_fail "$1" "expected: '$2'" "actual:   '$3'"
	fi
}

# lab_check_num DESC VALUE OP LIMIT: integer comparison with test's -eq -ne -gt -ge -lt -le.
lab_check_num()
{
	local desc=$1 value=$2 op=$3 limit=$4
	if [[ "$value" =~ ^-?[0-9]+$ ]] && test "$value" "$op" "$limit"; then
		lab_pass "$desc"
	else
		lab_fail "$desc" "expected: value $op $limit" "actual:   '$value'"
	fi
}

# lab_check_match DESC ERE TEXT / lab_check_nomatch DESC ERE TEXT
lab_check_match()
{
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then
		lab_pass "$1"
	else
		lab_fail "$1" "expected a match for /$2/ in:" "$(printf '%s\n' "$3" | lab_indent)"
	fi
}

lab_check_nomatch()
{
	if printf '%s\n' "$3" | grep -Eq -- "$2"; then
		lab_fail "$1" "unexpected match for /$2/ in:" "$(printf '%s\n' "$3" | lab_indent)"
	else
		lab_pass "$1"
	fi
}

# lab_finish: print the tally and exit (1 if anything failed); the EXIT trap cleans up.
lab_finish()
{
	printf '%d passed, %d failed\n' "$LAB_PASSED" "$LAB_FAILED"
	if [ "$LAB_FAILED" -gt 0 ]; then
		exit 1
	fi
	exit 0
}

# lab_bail MESSAGE: a failure after which the rest of the test makes no sense.
lab_bail()
{
	lab_fail "$1"
	lab_finish
}

lab_skip()
{
	printf 'SKIP: %s\n' "$*"
	exit 77
}

# ---------------------------------------------------------------------------------------------
# Requirements

lab_require_root()
{
	[ "$(id -u)" = 0 ] || lab_skip "needs root (network namespaces, nftables)"
}

lab_require_tools()
{
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || lab_skip "needs '$t', which is not installed"
	done
}

# lab_require_dotgw PATH: the daemon under test (a missing binary is a failure, not a skip).
lab_require_dotgw()
{
	if [ -z "${1:-}" ]; then
		echo "usage: $0 PATH-TO-DOTGW" >&2
		exit 2
	fi
	if [ ! -x "$1" ]; then
		echo "FAIL  dotgw binary '$1' is missing or not executable"
		exit 1
	fi
	DOTGW=$(readlink -f -- "$1")
}

# ---------------------------------------------------------------------------------------------
# Processes and namespaces

lab_in()
{
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

# lab_pid_alive PID: the process exists and is not a zombie.
lab_pid_alive()
{
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat:0:1}" != Z ]
}

# lab_sleep SECONDS: sleep, but let a trapped signal (Ctrl-C, SIGTERM) end the test at once.
lab_sleep()
{
	sleep "$1" &
	wait "$!"
}

# lab_wait_until TRIES CMD...: run CMD every 0.1 s until it succeeds, at most TRIES times.
# With LAB_WAIT_PID set, give up as soon as that process is gone.
lab_wait_until()
{
	local tries=$1 i
	shift
	for ((i = 0; i < tries; i++)); do
		"$@" && return 0
		if [ -n "${LAB_WAIT_PID:-}" ] && ! lab_pid_alive "$LAB_WAIT_PID"; then
			return 1
		fi
		lab_sleep 0.1
	done
	return 1
}

# lab_bg NS LOG CMD...: start CMD in NS in the background under timeout. LAB_BG_PID is the job:
# a subshell (in the root namespace; it only waits) whose child is timeout (inside NS: ip netns
# exec execs it), whose child is CMD. The subshell turns "timeout died of SIGKILL, like its
# command" into exit status 137, quietly (no "Killed" job report from bash).
lab_bg()
{
	local ns=$1 log=$2
	shift 2
	(
		ip netns exec "$ns" timeout "$LAB_PROC_TIMEOUT" "$@" >"$log" 2>&1 </dev/null
		exit $?
	) 2>/dev/null &
	LAB_BG_PID=$!
	LAB_BG_PIDS+=("$LAB_BG_PID")
}

# lab_bg_cmd_pid JOB: print the pid of the command a lab_bg JOB runs (waits up to 2 s).
lab_bg_cmd_pid()
{
	local i t c
	for ((i = 0; i < 20; i++)); do
		t=$(pgrep -P "$1" 2>/dev/null | head -n 1)
		[ -n "$t" ] && c=$(pgrep -P "$t" 2>/dev/null | head -n 1)
		if [ -n "$c" ]; then
			echo "$c"
			return 0
		fi
		lab_pid_alive "$1" || return 1
		lab_sleep 0.1
	done
	return 1
}

# lab_bg_stop JOB [SIGNAL]: send SIGNAL (default TERM) to the command of a lab_bg JOB, wait up
# to 10 s, reap it and return its exit status (128+N when it was killed by signal N; 124 when
# it did not exit and had to be killed).
lab_bg_stop()
{
	local job=$1 sig=${2:-TERM} t c rc i
	t=$(pgrep -P "$job" 2>/dev/null | head -n 1)
	[ -n "$t" ] && c=$(pgrep -P "$t" 2>/dev/null | head -n 1)
	kill -s "$sig" "${c:-${t:-$job}}" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		lab_pid_alive "$job" || break
		lab_sleep 0.1
	done
	if lab_pid_alive "$job"; then
		kill -KILL ${c:+"$c"} ${t:+"$t"} 2>/dev/null
		wait "$job" 2>/dev/null
		rc=124
	else
		wait "$job" 2>/dev/null
		rc=$?
	fi
	lab_bg_forget "$job"
	return "$rc"
}

# lab_bg_forget JOB: it has been reaped; cleanup need not wait for it.
lab_bg_forget()
{
	local p keep=()
	for p in "${LAB_BG_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	LAB_BG_PIDS=("${keep[@]}")
}

# lab_ns_new VAR ROLE: create namespace "$LAB_ID-ROLE" with lo up, store its name in VAR.
# IPv6 DAD is off for every interface created in it later.
lab_ns_new()
{
	local var=$1 name="$LAB_ID-$2"
	lab_tmpdir
	if ! ip netns add "$name" 2>"$LAB_DIR/netns.err"; then
		cat "$LAB_DIR/netns.err" >&2
		lab_skip "cannot create network namespaces here"
	fi
	LAB_NAMESPACES+=("$name")
	ip -n "$name" link set lo up
	ip netns exec "$name" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 >/dev/null
	printf -v "$var" '%s' "$name"
}

# lab_ns_pids: print the pids of every process in our namespaces, one per line.
# lab_ns_procs NS NAME: pids of the processes called NAME whose network namespace is NS.
# (pkill/pgrep match the whole machine: "ip netns exec NS pkill x" would kill every x,
# other tests' included.)
lab_ns_procs()
{
	local pid
	for pid in $(ip netns pids "$1" 2>/dev/null); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
	done
}

# lab_ns_kill NS NAME [SIGNAL]: signal the processes called NAME in NS, and only those; wait
# (bounded) until they are gone. Returns 1 if some are still there.
lab_ns_kill()
{
	local pids
	pids=$(lab_ns_procs "$1" "$2")
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086 # one pid per word
	kill -"${3:-TERM}" $pids 2>/dev/null
	lab_wait_until 50 sh -c "[ -z \"\$(for p in $(echo $pids); do [ -e /proc/\$p ] && echo \$p; done)\" ]"
}

lab_ns_pids()
{
	local ns
	for ns in "${LAB_NAMESPACES[@]}"; do
		ip netns pids "$ns" 2>/dev/null
	done
}

lab_cleanup()
{
	local rc=$? ns p i pids=()
	[ "$LAB_CLEANED" = 1 ] && return "$rc"
	LAB_CLEANED=1
	# A second Ctrl-C must not cut the cleanup short.
	trap '' INT TERM HUP
	# Every process in our namespaces is ours (dotgw, unbound, tcpdump, their timeouts and any
	# foreground command); the lab_bg jobs end with them.
	mapfile -t pids < <(lab_ns_pids)
	[ "${#pids[@]}" -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		mapfile -t pids < <(lab_ns_pids)
		[ "${#pids[@]}" -eq 0 ] && break
		sleep 0.1
	done
	[ "${#pids[@]}" -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null
	for p in "${LAB_BG_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	for ns in "${LAB_NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$LAB_DIR" ] && [ -d "$LAB_DIR" ]; then
		if [ "${LAB_KEEP:-0}" = 1 ]; then
			echo "# kept $LAB_DIR"
		else
			rm -rf -- "$LAB_DIR"
		fi
	fi
	return "$rc"
}

trap lab_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# lab_tmpdir: create LAB_DIR (world-readable, so a daemon that dropped privileges can read the
# CA files in it).
lab_tmpdir()
{
	[ -n "$LAB_DIR" ] && return 0
	LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/dotgw-lab.XXXXXX") || exit 1
	chmod 755 "$LAB_DIR"
}

# ---------------------------------------------------------------------------------------------
# Topology

# lab_veth NS_A IF_A NS_B IF_B: a veth pair created directly inside the two namespaces.
lab_veth()
{
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3" &&
		ip -n "$1" link set "$2" up &&
		ip -n "$3" link set "$4" up
}

lab_setup_topology()
{
	lab_tmpdir
	lab_ns_new NS_CLIENT client
	lab_ns_new NS_GW gw
	lab_ns_new NS_UP up
	lab_ns_new NS_DECOY decoy

	lab_veth "$NS_CLIENT" "$LAB_IF_CLIENT" "$NS_GW" "$LAB_GW_IF_CLIENT" || return 1
	lab_veth "$NS_UP" "$LAB_IF_UP" "$NS_GW" "$LAB_GW_IF_UP" || return 1
	lab_veth "$NS_DECOY" "$LAB_IF_DECOY" "$NS_GW" "$LAB_GW_IF_DECOY" || return 1

	ip -n "$NS_CLIENT" addr add "$LAB_CLIENT4/24" dev "$LAB_IF_CLIENT" &&
		ip -n "$NS_CLIENT" addr add "$LAB_CLIENT6/64" dev "$LAB_IF_CLIENT" nodad &&
		ip -n "$NS_CLIENT" route add default via "$LAB_GW_CLIENT4" &&
		ip -n "$NS_CLIENT" -6 route add default via "$LAB_GW_CLIENT6" || return 1

	ip -n "$NS_GW" addr add "$LAB_GW_CLIENT4/24" dev "$LAB_GW_IF_CLIENT" &&
		ip -n "$NS_GW" addr add "$LAB_GW_CLIENT6/64" dev "$LAB_GW_IF_CLIENT" nodad &&
		ip -n "$NS_GW" addr add "$LAB_GW_UP4/24" dev "$LAB_GW_IF_UP" &&
		ip -n "$NS_GW" addr add "$LAB_GW_UP6/64" dev "$LAB_GW_IF_UP" nodad &&
		ip -n "$NS_GW" addr add "$LAB_GW_DECOY4/24" dev "$LAB_GW_IF_DECOY" &&
		ip -n "$NS_GW" addr add "$LAB_GW_DECOY6/64" dev "$LAB_GW_IF_DECOY" nodad || return 1
	ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 >/dev/null || return 1

	ip -n "$NS_UP" addr add "$LAB_UP4/24" dev "$LAB_IF_UP" &&
		ip -n "$NS_UP" addr add "$LAB_UP6/64" dev "$LAB_IF_UP" nodad &&
		ip -n "$NS_UP" route add default via "$LAB_GW_UP4" &&
		ip -n "$NS_UP" -6 route add default via "$LAB_GW_UP6" || return 1

	ip -n "$NS_DECOY" addr add "$LAB_DECOY4/24" dev "$LAB_IF_DECOY" &&
		ip -n "$NS_DECOY" addr add "$LAB_DECOY6/64" dev "$LAB_IF_DECOY" nodad &&
		ip -n "$NS_DECOY" route add default via "$LAB_GW_DECOY4" &&
		ip -n "$NS_DECOY" -6 route add default via "$LAB_GW_DECOY6" || return 1
}

# ---------------------------------------------------------------------------------------------
# PKI: a CA, a server certificate for dot.test signed by it, and an unrelated second CA.

lab_setup_pki()
{
	local d="$LAB_DIR/pki" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
	mkdir -p "$d" && chmod 755 "$d" || return 1
	cat >"$d/ca.cnf" <<-EOF
		[req]
		distinguished_name = dn
		[dn]
		[v3_ca]
		basicConstraints = critical, CA:TRUE
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
	EOF
	cat >"$d/server.ext" <<-EOF
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature
		extendedKeyUsage = serverAuth
		subjectAltName = DNS:$LAB_AUTH_NAME
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	{
		openssl req -x509 -new "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 \
			-subj "/CN=dotgw lab CA" -config "$d/ca.cnf" -extensions v3_ca &&
		openssl req -x509 -new "${ec[@]}" -keyout "$d/other-ca.key" -out "$d/other-ca.pem" \
			-days 2 -subj "/CN=dotgw lab unrelated CA" -config "$d/ca.cnf" \
			-extensions v3_ca &&
		openssl req -new "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" \
			-subj "/CN=$LAB_AUTH_NAME" -config "$d/ca.cnf" &&
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
			-set_serial "0x$(openssl rand -hex 8)" -days 2 -out "$d/server.pem" \
			-extfile "$d/server.ext"
	} >"$d/openssl.log" 2>&1 || { cat "$d/openssl.log"; return 1; }
	chmod 644 "$d/ca.pem" "$d/other-ca.pem" "$d/server.pem"
	LAB_CA="$d/ca.pem"
	LAB_OTHER_CA="$d/other-ca.pem"
	LAB_SERVER_CERT="$d/server.pem"
	LAB_SERVER_KEY="$d/server.key"
}

# ---------------------------------------------------------------------------------------------
# Upstream (DoT) and decoy (plain DNS) resolvers

# Common unbound server settings; $1 is a file-name prefix in LAB_DIR.
lab_unbound_common()
{
	cat <<-EOF
		server:
			verbosity: 1
			use-syslog: no
			logfile: ""
			log-queries: yes
			username: ""
			chroot: ""
			directory: "$LAB_DIR"
			pidfile: "$LAB_DIR/$1.pid"
			num-threads: 1
			so-reuseport: no
			do-ip4: yes
			do-ip6: yes
			do-udp: yes
			do-tcp: yes
			incoming-num-tcp: 100
			outgoing-range: 64
			access-control: 0.0.0.0/0 allow
			access-control: ::/0 allow
			module-config: "iterator"
			rrset-roundrobin: no
			# No recursion, ever: every name outside the local data is NXDOMAIN.
			local-zone: "." static
			local-zone: "example.test." static
	EOF
}

lab_start_upstream()
{
	local conf="$LAB_DIR/upstream.conf" i
	{
		lab_unbound_common upstream
		cat <<-EOF
			interface: $LAB_UP4@53
			interface: $LAB_UP4@853
			interface: $LAB_UP6@53
			interface: $LAB_UP6@853
			tls-port: 853
			tls-service-key: "$LAB_SERVER_KEY"
			tls-service-pem: "$LAB_SERVER_CERT"
			local-data: "www.example.test. A $LAB_UP_A"
			local-data: "www.example.test. AAAA $LAB_UP_AAAA"
			local-zone: "bench.test." redirect
			local-data: "bench.test. A 203.0.113.99"
		EOF
		for ((i = 1; i <= LAB_BIG_TXT_COUNT; i++)); do
			# 60 characters each: "big-NN-" and 53 filler letters.
			printf "\tlocal-data: 'big.example.test. TXT \"big-%02d-%s\"'\n" "$i" \
				abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyza
		done
		# A test's own additions (e.g. an auth-zone); empty for every other test.
		[ -n "${LAB_UP_EXTRA_CONF:-}" ] && printf '%s\n' "$LAB_UP_EXTRA_CONF"
		cat <<-EOF
			remote-control:
				control-enable: yes
				control-use-cert: no
				control-interface: "$LAB_DIR/upstream.ctl"
		EOF
	} >"$conf"
	LAB_UP_CONF=$conf
	lab_bg "$NS_UP" "$LAB_DIR/upstream.log" unbound -d -c "$conf"
	LAB_UP_PID=$LAB_BG_PID
	if ! LAB_WAIT_PID=$LAB_UP_PID lab_wait_until 100 lab_upstream_answers; then
		echo "upstream unbound did not start; its log:"
		lab_indent <"$LAB_DIR/upstream.log"
		return 1
	fi
}

# lab_upstream_quiet: restart the upstream without query logging. The tests want the log; at
# the tens of thousands of queries a second of a benchmark it would be the bottleneck and fill
# the disk.
lab_upstream_quiet()
{
	sed -i 's/^\([[:space:]]*\)log-queries: yes/\1log-queries: no/' "$LAB_UP_CONF"
	lab_bg_stop "$LAB_UP_PID"
	lab_bg "$NS_UP" "$LAB_DIR/upstream.log" unbound -d -c "$LAB_UP_CONF"
	LAB_UP_PID=$LAB_BG_PID
	LAB_WAIT_PID=$LAB_UP_PID lab_wait_until 100 lab_upstream_answers
}

lab_upstream_answers()
{
	local a4 a6 t4
	a4=$(ip netns exec "$NS_UP" timeout 3 dig +time=1 +tries=1 +short \
		@"$LAB_UP4" www.example.test A 2>/dev/null)
	a6=$(ip netns exec "$NS_UP" timeout 3 dig +time=1 +tries=1 +short \
		@"$LAB_UP6" www.example.test AAAA 2>/dev/null)
	t4=$(ip netns exec "$NS_UP" timeout 3 kdig +time=1 +retry=0 +short +tls-ca="$LAB_CA" \
		+tls-hostname="$LAB_AUTH_NAME" @"$LAB_UP4" www.example.test A 2>/dev/null)
	[ "$a4" = "$LAB_UP_A" ] && [ "$a6" = "$LAB_UP_AAAA" ] && [ "$t4" = "$LAB_UP_A" ]
}

# lab_upstream_queries: print the upstream's total.num.queries (since the last reset).
lab_upstream_queries()
{
	ip netns exec "$NS_UP" timeout 10 unbound-control -c "$LAB_UP_CONF" stats_noreset 2>&1 |
		sed -n 's/^total\.num\.queries=//p'
}

# lab_upstream_stat KEY: print one of the upstream's statistics (0 when absent), e.g.
# num.query.https (extended-statistics: yes).
lab_upstream_stat()
{
	ip netns exec "$NS_UP" timeout 10 unbound-control -c "$LAB_UP_CONF" stats_noreset 2>/dev/null |
		awk -F= -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}

# lab_require_upstream_doh: skip unless the upstream answers DNS-over-HTTPS at LAB_UP4:443
# (LAB_UP_EXTRA_CONF gave it https-port and http-endpoint).
lab_require_upstream_doh()
{
	ip netns exec "$NS_UP" timeout 5 kdig +https +tls-ca="$LAB_CA" +tls-hostname="$LAB_AUTH_NAME" \
		+short @"$LAB_UP4" www.example.test A 2>/dev/null | grep -qx "$LAB_UP_A" ||
		lab_skip "this unbound does not serve DNS-over-HTTPS (built without libnghttp2?)"
}

# lab_rcvbuf_drops NS: UDP datagrams dropped for a full socket receive buffer in NS so far
# (/proc/net/snmp's RcvbufErrors: e.g. a dnsperf whose answers come back in a burst larger than
# its buffer; it counts them lost).
lab_rcvbuf_drops()
{
	# shellcheck disable=SC2016 # awk's fields, not the shell's
	ip netns exec "$1" awk '/^Udp:/ { if (!k) { for (i = 1; i <= NF; i++)
		if ($i == "RcvbufErrors") k = i } else { print $k; exit } }' /proc/net/snmp
}

# lab_dnsperf_counts FILE: "sent completed lost NOERROR SERVFAIL" from a dnsperf output.
lab_dnsperf_counts()
{
	awk '/Queries sent:/ { s = $3 } /Queries completed:/ { c = $3 } /Queries lost:/ { l = $3 }
		/Response codes:/ { for (i = 3; i < NF; i++) if ($i ~ /^[A-Z]+$/) r[$i] = $(i + 1) + 0 }
		END { printf "%d %d %d %d %d\n", s, c, l, r["NOERROR"], r["SERVFAIL"] }' "$1"
}

# lab_upstream_reset: zero the upstream's statistics.
lab_upstream_reset()
{
	ip netns exec "$NS_UP" timeout 10 unbound-control -c "$LAB_UP_CONF" stats >/dev/null 2>&1
}

lab_start_decoy()
{
	local conf="$LAB_DIR/decoy.conf"
	{
		lab_unbound_common decoy
		cat <<-EOF
			interface: $LAB_DECOY4@53
			interface: $LAB_DECOY6@53
			local-data: "www.example.test. A $LAB_DECOY_A"
			local-data: "www.example.test. AAAA $LAB_DECOY_AAAA"
			local-data: 'big.example.test. TXT "decoy"'
			remote-control:
				control-enable: no
		EOF
	} >"$conf"
	cat >"$LAB_DIR/decoy.nft" <<-EOF
		table inet decoy
		delete table inet decoy
		table inet decoy {
			chain input {
				type filter hook input priority 0;
				udp dport 53 counter
				tcp dport 53 counter
			}
		}
	EOF
	ip netns exec "$NS_DECOY" nft -f "$LAB_DIR/decoy.nft" || return 1
	lab_bg "$NS_DECOY" "$LAB_DIR/decoy.log" unbound -d -c "$conf"
	LAB_DECOY_PID=$LAB_BG_PID
	if ! LAB_WAIT_PID=$LAB_DECOY_PID lab_wait_until 100 lab_decoy_answers; then
		echo "decoy unbound did not start; its log:"
		lab_indent <"$LAB_DIR/decoy.log"
		return 1
	fi
}

lab_decoy_answers()
{
	local a4 a6
	a4=$(ip netns exec "$NS_DECOY" timeout 3 dig +time=1 +tries=1 +short \
		@"$LAB_DECOY4" www.example.test A 2>/dev/null)
	a6=$(ip netns exec "$NS_DECOY" timeout 3 dig +time=1 +tries=1 +short \
		@"$LAB_DECOY6" www.example.test AAAA 2>/dev/null)
	[ "$a4" = "$LAB_DECOY_A" ] && [ "$a6" = "$LAB_DECOY_AAAA" ]
}

# lab_decoy_count: print how many port-53 packets (UDP and TCP) reached the decoy.
lab_decoy_count()
{
	ip netns exec "$NS_DECOY" nft list table inet decoy |
		awk '{ for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) } END { print n + 0 }'
}

# lab_decoy_reset: zero the decoy's counters (the table is replaced atomically).
lab_decoy_reset()
{
	ip netns exec "$NS_DECOY" nft -f "$LAB_DIR/decoy.nft"
}

# lab_setup: the whole lab; on failure the test exits 1 (or 77 when namespaces are missing).
lab_setup()
{
	lab_tmpdir
	lab_setup_topology || { lab_fail "lab: building the topology"; lab_finish; }
	lab_setup_pki || { lab_fail "lab: creating the test PKI"; lab_finish; }
	lab_start_upstream || { lab_fail "lab: starting the upstream resolver"; lab_finish; }
	lab_start_decoy || { lab_fail "lab: starting the decoy resolver"; lab_finish; }
	lab_upstream_reset
	lab_decoy_reset
	# shellcheck disable=SC2034 # used by the tests that source this file
	LAB_DOTGW_ARGS=(--mode tproxy --upstream "$LAB_UP4#$LAB_AUTH_NAME" --ca-file "$LAB_CA"
		--log-level debug)
	lab_log "lab $LAB_ID ready (namespaces ${LAB_NAMESPACES[*]}; files in $LAB_DIR)"
}

# lab_client_spread TABLE N: the client's UDP to port 53 leaves from N addresses in turn, one per
# new flow (198.51.100.10 and up, added to the client's interface if missing; SNAT in nft table
# ip TABLE of the client's namespace, conntrack flushed), so NFQUEUE's hash of the addresses
# spreads it over the queues. lab_client_spread_off TABLE undoes the SNAT.
lab_client_spread()
{
	local i map=
	for ((i = 0; i < $2; i++)); do
		ip -n "$NS_CLIENT" -4 addr show dev "$LAB_IF_CLIENT" | grep -q " 198.51.100.$((10 + i))/" ||
			ip -n "$NS_CLIENT" addr add "198.51.100.$((10 + i))/32" dev "$LAB_IF_CLIENT" || return 1
		map+="${map:+, }$i : 198.51.100.$((10 + i))"
	done
	ip netns exec "$NS_CLIENT" conntrack -F >/dev/null 2>&1
	ip netns exec "$NS_CLIENT" nft -f - <<-EOF
		table ip $1 {
			chain post {
				type nat hook postrouting priority srcnat; policy accept;
				ip saddr $LAB_CLIENT4 udp dport 53 snat to numgen inc mod $2 map { $map }
			}
		}
	EOF
}

lab_client_spread_off()
{
	ip netns exec "$NS_CLIENT" nft delete table ip "$1" 2>/dev/null
	ip netns exec "$NS_CLIENT" conntrack -F >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
# The daemon

# lab_start_dotgw ARGS...: run dotgw with ARGS in NS_GW (or LAB_DOTGW_NS) and wait up to 10 s
# for "ready" in its log. Sets DOTGW_PID (the daemon's pid) and DOTGW_JOB (its lab_bg job). On
# failure counts a failed check, prints the log and returns 1.
lab_start_dotgw()
{
	local ns=${LAB_DOTGW_NS:-$NS_GW} i
	DOTGW_LOG="$LAB_DIR/dotgw.log"
	if [ -s "$DOTGW_LOG" ]; then
		cat "$DOTGW_LOG" >>"$LAB_DIR/dotgw-earlier.log"
	fi
	: >"$DOTGW_LOG"
	LAB_CMD=
	lab_log "starting dotgw $*"
	lab_bg "$ns" "$DOTGW_LOG" "$DOTGW" "$@"
	DOTGW_JOB=$LAB_BG_PID
	DOTGW_PID=
	for ((i = 0; i < 100; i++)); do
		[ -n "$DOTGW_PID" ] || DOTGW_PID=$(lab_bg_cmd_pid "$DOTGW_JOB")
		if [ -n "$DOTGW_PID" ] && grep -qw ready "$DOTGW_LOG"; then
			return 0
		fi
		lab_pid_alive "$DOTGW_JOB" || break
		lab_sleep 0.1
	done
	if lab_pid_alive "$DOTGW_JOB"; then
		lab_fail "dotgw $* did not log 'ready' within 10 s"
		lab_stop_dotgw KILL
	else
		wait "$DOTGW_JOB" 2>/dev/null
		lab_fail "dotgw $* exited (status $?) before logging 'ready'"
		lab_bg_forget "$DOTGW_JOB"
		DOTGW_PID=
		DOTGW_JOB=
	fi
	return 1
}

# lab_stop_dotgw [SIGNAL]: send SIGNAL (default TERM), wait up to 10 s, return the exit status
# (0 for a clean exit, 128+N when killed by signal N, 124 if it had to be killed).
lab_stop_dotgw()
{
	local rc
	[ -n "${DOTGW_JOB:-}" ] || return 125
	lab_bg_stop "$DOTGW_JOB" "${1:-TERM}"
	rc=$?
	DOTGW_PID=
	DOTGW_JOB=
	return "$rc"
}

# lab_dotgw_stat KEY: print the value of KEY=N on the last "stats:" line of dotgw's log.
lab_dotgw_stat()
{
	grep 'stats:' "$DOTGW_LOG" 2>/dev/null | tail -n 1 |
		grep -Eo "(^|[[:space:]])$1=[0-9]+" | head -n 1 | sed 's/.*=//'
}

# lab_dotgw_stat_now NAME: as lab_dotgw_stat, from a "stats:" line asked for now (SIGUSR1).
lab_dotgw_stat_now()
{
	local n
	n=$(grep -c 'stats:' "$DOTGW_LOG")
	kill -USR1 "$DOTGW_PID"
	lab_wait_until 30 sh -c "[ \$(grep -c stats: '$DOTGW_LOG') -gt $n ]"
	lab_dotgw_stat "$1"
}

# lab_dotgw_usr1_workers: ask for the counters (SIGUSR1) and wait for the per-worker lines,
# "worker I: N queries (N UDP, N TCP), N cache hits, N misses" (logged with two workers or more).
lab_dotgw_usr1_workers()
{
	local before
	before=$(grep -c 'worker 1: ' "$DOTGW_LOG")
	kill -USR1 "$DOTGW_PID"
	lab_wait_until 50 test "$(grep -c 'worker 1: ' "$DOTGW_LOG")" -gt "$before"
}

# lab_dotgw_worker_stat I WORD: the number before WORD (queries, UDP, TCP, cache, misses) on
# worker I's last per-worker line.
lab_dotgw_worker_stat()
{
	grep "worker $1: " "$DOTGW_LOG" 2>/dev/null | tail -n 1 | grep -Eo "[0-9]+ $2" |
		head -n 1 | sed 's/ .*//'
}

# lab_capture DESC CMD...: run CMD, keeping its output (stdout and stderr) in LAB_OUT, its
# status in LAB_RC and DESC in LAB_CMD for the checks that follow (and their failure reports).
# The way to run a command in a namespace or a container is the caller's (lab_run, and the
# container tests' own wrappers).
lab_capture()
{
	LAB_CMD=$1
	shift
	lab_tmpdir
	# In the background and then waited for: a trapped signal interrupts "wait" at once, where
	# it would wait for a foreground command to finish (and SIGINT would even be forgotten).
	"$@" >"$LAB_DIR/run.out" 2>&1 </dev/null &
	wait "$!"
	LAB_RC=$?
	LAB_OUT=$(cat "$LAB_DIR/run.out")
	return "$LAB_RC"
}

# lab_run NS CMD...: run a foreground command in NS (under timeout LAB_RUN_TIMEOUT, 30 s unless
# changed), through lab_capture.
lab_run()
{
	local ns=$1
	shift
	lab_capture "[${ns##*-}] $*" ip netns exec "$ns" timeout "$LAB_RUN_TIMEOUT" "$@"
}

# dotgw's table (inet LAB_DOTGW_TABLE, default dotgw) in NS_GW (or LAB_DOTGW_NS): does it
# exist? how many rules has it?
lab_dotgw_table_exists()
{
	ip netns exec "${LAB_DOTGW_NS:-$NS_GW}" nft list table inet "${LAB_DOTGW_TABLE:-dotgw}" \
		>/dev/null 2>&1
}

lab_dotgw_rule_count()
{
	ip netns exec "${LAB_DOTGW_NS:-$NS_GW}" nft -a list table inet "${LAB_DOTGW_TABLE:-dotgw}" \
		2>/dev/null |
		awk '/^[[:space:]]*chain .*\{/ { c = 1; next }
		     c && /^[[:space:]]*\}/ { c = 0; next }
		     c && /# handle [0-9]+/ { n++ }
		     END { print n + 0 }'
}

# ---------------------------------------------------------------------------------------------
# DNS queries with dig, and what the last answer said

# lab_dig NS DIG-ARGS...: one query; the output goes to LAB_OUT (printed by failing checks).
# Default +time=3 +tries=2; later arguments override them.
lab_dig()
{
	local ns=$1
	shift
	lab_run "$ns" dig +time=3 +tries=2 "$@"
}

# The status (NOERROR, SERVFAIL, ...) of the last answer; empty when none arrived.
lab_dig_status()
{
	printf '%s\n' "$LAB_OUT" | sed -n 's/.*->>HEADER<<-.* status: \([A-Z]*\),.*/\1/p' | tail -n 1
}

# The header flags of the last answer, e.g. "qr rd ra tc".
lab_dig_flags()
{
	printf '%s\n' "$LAB_OUT" | sed -n 's/^;; flags: \([a-z ]*\);.*/\1/p' | tail -n 1
}

lab_dig_has_flag()
{
	[[ " $(lab_dig_flags) " == *" $1 "* ]]
}

# The ANSWER count from the header of the last answer.
lab_dig_ancount()
{
	printf '%s\n' "$LAB_OUT" | sed -n 's/^;; flags:.* ANSWER: \([0-9]*\),.*/\1/p' | tail -n 1
}

# Who answered: "192.0.2.53#53" from ";; SERVER: 192.0.2.53#53(192.0.2.53) (UDP)".
lab_dig_server()
{
	printf '%s\n' "$LAB_OUT" | sed -n 's/^;; SERVER: \([^(]*\)(.*/\1/p' | tail -n 1
}

# The transport dig used last: UDP or TCP.
lab_dig_proto()
{
	printf '%s\n' "$LAB_OUT" | sed -n 's/^;; SERVER: .*(\([A-Z]*\))$/\1/p' | tail -n 1
}

# lab_dig_rdata TYPE: the rdata of each TYPE record in the answer section, one per line.
lab_dig_rdata()
{
	printf '%s\n' "$LAB_OUT" | awk -v t="$1" '
		/^;; ANSWER SECTION:/ { s = 1; next }
		s && /^$/ { s = 0 }
		s && $4 == t { $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }'
}

# lab_dig_summary TYPE: the last answer in one line, for one comparison that shows everything:
# "NOERROR 203.0.113.80 from 192.0.2.53#53 (UDP)" (several records are joined with commas).
lab_dig_summary()
{
	printf '%s %s from %s (%s)\n' "$(lab_dig_status)" "$(lab_dig_rdata "$1" | paste -sd, -)" \
		"$(lab_dig_server)" "$(lab_dig_proto)"
}
