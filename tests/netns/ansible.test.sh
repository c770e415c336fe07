#!/bin/bash
# ansible.test.sh - the Ansible role and playbooks (ansible/) deploy dotgw on a real Debian 12
# machine booted with systemd, in the lab's gateway namespace, and take it away again:
#
#   client ---- gw-c [ gateway namespace = a Debian 12 root booted by    ] gw-u ---- upstream
#                    [ systemd-nspawn -b --network-namespace-path; the    ]          (unbound DoT,
#                    [ playbooks reach it over community.docker.nsenter   ] gw-d     dot.test)
#                                                                            \--- decoy 192.0.2.53
#
# The root and the package come from the debian_image fixture (tests/debian-image.sh, in
# DOTGW_DEBIAN_IMAGE): the root has systemd, python3 and dotgw's run-time libraries, so
# nothing is downloaded here. Then:
#   ansible-lint --offline passes with the production profile (run alongside the rest);
#   gateway.yml --check on the bare machine fails nothing and installs nothing;
#   gateway.yml installs the package, writes the configuration, turns forwarding on, enables
#     and starts the service: the client's DNS to the decoy is answered by the upstream over
#     DoT, the decoy sees nothing; a second run changes nothing (changed=0);
#   --check --diff shows changed variables (cache size, hold timeout) and changes nothing; the
#     real run reloads dotgw (same process, one more "reloaded" in its journal); a change of
#     metrics, which a reload would keep, restarts it; a restart-only change (mode nfqueue,
#     fail closed) then restarts it, and the next run changes nothing (the configuration it
#     checks has all the changes);
#   host.yml (scope host, fail closed, the package from a URL with its checksum) in the same
#     machine: its own DNS is answered over DoT, the client's is no longer captured; a second
#     run changes nothing;
#   uninstall.yml stops dotgw (fail closed: its block stays) and removes the package, the
#     files, the table and the policy routing (the block included): DNS reaches the decoy
#     again; a second run changes nothing.
# The idempotence runs are one after the install and one after each of the three changes
# (reload and restart together, host scope, uninstall): ansible-playbook over nsenter takes
# ~12 s a run, the bulk of this test.
# Runs in the gcc pass only (the fixture is not set up under the sanitizers).
#
# Usage: ansible.test.sh PATH-TO-DOTGW   (with DOTGW_DEBIAN_IMAGE=DIR holding dotgw.deb and
# root.tar)

# The upstream and decoy servers must outlive the whole run (several minutes on a loaded
# machine), not lib.sh's default 300 s.
LAB_PROC_TIMEOUT=${LAB_PROC_TIMEOUT:-900}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
[ -n "${DOTGW_DEBIAN_IMAGE:-}" ] ||
	lab_skip "DOTGW_DEBIAN_IMAGE is not set: this test runs with the debian_image fixture" \
		"(the gcc pass of bootstrap.sh test, not the sanitizer pass)"
lab_require_tools "${LAB_TOOLS[@]}" ansible-playbook ansible-lint systemd-nspawn nsenter tar
lab_require_dotgw "${1:-}"
IMAGE=$DOTGW_DEBIAN_IMAGE
if [ ! -s "$IMAGE/root.tar" ] || [ ! -s "$IMAGE/dotgw.deb" ]; then
	echo "FAIL  $IMAGE has no root.tar and dotgw.deb (made by tests/debian-image.sh)"
	exit 1
fi
ANSIBLE_DIR=$(cd "$(dirname "$0")/../../ansible" && pwd) || exit 1
lab_tmpdir

# --- lint ------------------------------------------------------------------------------------
# In the background while the machine boots and the playbooks run (it reads only ansible/);
# its result is checked at the end. The cleanup stops it when the test ends early.
lab_log "ansible-lint --offline, production profile (in the background)"
(cd "$ANSIBLE_DIR" && exec timeout 300 ansible-lint --offline --nocolor --profile production) \
	>"$LAB_DIR/lint.out" 2>&1 </dev/null &
LINT_PID=$!
LAB_BG_PIDS+=("$LINT_PID")

# --- the machine -------------------------------------------------------------------------------
lab_setup
# The gateway namespace starts without forwarding: the gateway playbook must turn it on.
ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

ROOT="$LAB_DIR/root"
if ! mkdir -p "$ROOT" || ! tar -C "$ROOT" --numeric-owner -xpf "$IMAGE/root.tar"; then
	lab_bail "unpacking $IMAGE/root.tar"
fi
CPID=
NSPAWN_JOB=

# ctr_pid1: the container's PID 1 (systemd) as seen from here: the process in the gateway
# namespace whose innermost pid is 1.
# shellcheck disable=SC2317 # called indirectly
ctr_pid1()
{
	local pid
	for pid in $(ip netns pids "$NS_GW" 2>/dev/null); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] || continue
		if awk '/^NSpid:/ { exit !($NF == 1) }' "/proc/$pid/status" 2>/dev/null; then
			CPID=$pid
			return 0
		fi
	done
	return 1
}

# ctr CMD...: run CMD inside the container (all its namespaces), output in LAB_OUT.
ctr()
{
	lab_capture "[container] $*" timeout "$LAB_RUN_TIMEOUT" nsenter --target="$CPID" --all "$@"
}

# Power the container off (bounded), then the lab's own cleanup.
# shellcheck disable=SC2317 # called indirectly
ctr_cleanup()
{
	local rc=$? i
	if [ -n "$NSPAWN_JOB" ] && lab_pid_alive "$NSPAWN_JOB"; then
		[ -n "$CPID" ] && kill -s RTMIN+4 "$CPID" 2>/dev/null # systemd: poweroff
		for ((i = 0; i < 150; i++)); do
			lab_pid_alive "$NSPAWN_JOB" || break
			sleep 0.1
		done
		lab_pid_alive "$NSPAWN_JOB" && kill -KILL "$NSPAWN_JOB" ${CPID:+"$CPID"} 2>/dev/null
		wait "$NSPAWN_JOB" 2>/dev/null
	fi
	lab_cleanup
	return "$rc"
}
trap ctr_cleanup EXIT

lab_log "booting the Debian 12 root with systemd in the gateway namespace"
SYSTEMD_NSPAWN_API_VFS_WRITABLE=network systemd-nspawn -q -D "$ROOT" -b --capability=CAP_NET_ADMIN --keep-unit --register=no -M "dotgw-ans-$$" \
	--network-namespace-path="/run/netns/$NS_GW" </dev/null >"$LAB_DIR/nspawn.log" 2>&1 &
NSPAWN_JOB=$!
LAB_WAIT_PID=$NSPAWN_JOB lab_wait_until 300 ctr_pid1 ||
	lab_bail "the container's systemd did not appear" "$(tail -n 20 "$LAB_DIR/nspawn.log")"
# is-system-running fails until systemd's bus is up, then --wait waits for the boot to end.
# shellcheck disable=SC2317 # called indirectly
booted()
{
	ctr timeout 30 systemctl is-system-running --wait
	[[ "$LAB_OUT" =~ ^(running|degraded)$ ]]
}
LAB_WAIT_PID=$NSPAWN_JOB lab_wait_until 600 booted ||
	lab_bail "the container did not finish booting" "$(tail -n 20 "$LAB_DIR/nspawn.log")"
lab_pass "the container booted: $LAB_OUT (its systemd is pid $CPID here)"

# --- inventories ---------------------------------------------------------------------------
# Two inventories for the same machine: as a gateway, then as a host. The variables live in
# group_vars, as they would in a real deployment.
write_inventory()
{
	local dir="$LAB_DIR/inv-$1" group=$2
	mkdir -p "$dir/group_vars"
	cat >"$dir/hosts.ini" <<-EOF
		[$group]
		ctr ansible_connection=community.docker.nsenter ansible_nsenter_pid=$CPID ansible_python_interpreter=/usr/bin/python3 ansible_become=false
	EOF
	cat >"$dir/group_vars/all.yml" <<-EOF
		dotgw_deb_src: $IMAGE/dotgw.deb
		dotgw_ca_src: $LAB_CA
		dotgw_upstreams:
		  - address: $LAB_UP4
		    auth_name: $LAB_AUTH_NAME
		dotgw_query_log: true
	EOF
}
write_inventory gateway dotgw_gateways
echo "dotgw_interfaces: [$LAB_GW_IF_CLIENT]" >>"$LAB_DIR/inv-gateway/group_vars/all.yml"
write_inventory host dotgw_hosts
# The host inventory takes the package from a URL instead: a web server in the upstream
# namespace serves it.
mkdir -p "$LAB_DIR/www" || lab_bail "making $LAB_DIR/www"
cp -- "$IMAGE/dotgw.deb" "$LAB_DIR/www/" || lab_bail "copying the package"
DEB_SHA=$(sha256sum "$LAB_DIR/www/dotgw.deb" | cut -d' ' -f1)
sed -i "s|^dotgw_deb_src: .*|dotgw_deb_url: http://$LAB_UP4:8053/dotgw.deb\ndotgw_deb_checksum: sha256:$DEB_SHA|" \
	"$LAB_DIR/inv-host/group_vars/all.yml"
lab_bg "$NS_UP" "$LAB_DIR/www.log" python3 -m http.server --bind "$LAB_UP4" --directory "$LAB_DIR/www" 8053

# play INVENTORY PLAYBOOK [ARGS...]: run it; RECAP is its PLAY RECAP line, CHANGED and FAILED
# its counts.
RUNS=0
play()
{
	local out inv=$1 book=$2
	shift 2
	RUNS=$((RUNS + 1))
	out="$LAB_DIR/play-$RUNS-$book.out"
	PLAY_OUT=$out
	(cd "$ANSIBLE_DIR" && ANSIBLE_CONFIG="$ANSIBLE_DIR/ansible.cfg" ANSIBLE_NOCOLOR=1 \
		ANSIBLE_HOME="$LAB_DIR/ansible-home" ANSIBLE_LOCAL_TEMP="$LAB_DIR/ansible-tmp" \
		timeout 600 ansible-playbook -i "$LAB_DIR/inv-$inv/hosts.ini" "$book.yml" "$@") \
		>"$out" 2>&1 &
	wait "$!"
	LAB_RC=$?
	# shellcheck disable=SC2034 # lib.sh's lab_fail prints it
	LAB_CMD="ansible-playbook -i inv-$inv $book.yml $* (log: $out)"
	LAB_OUT=$(grep -E '^(TASK|RUNNING HANDLER|changed|fatal|failed|ok|skipping)|FAILED|ERROR' "$out")
	RECAP=$(grep -E '^ctr +:' "$out" | tail -n 1)
	CHANGED=$(printf '%s\n' "$RECAP" | sed -n 's/.* changed=\([0-9]*\).*/\1/p')
	FAILED=$(printf '%s\n' "$RECAP" | sed -n 's/.* failed=\([0-9]*\).*/\1/p')
	lab_log "$book.yml $* ($inv inventory): ${RECAP:-no recap} [$(grep -c '^TASK' "$out") tasks]"
}

# main_pid: dotgw's MainPID inside the container ("0" when it is not running).
main_pid()
{
	ctr systemctl show -p MainPID --value dotgw.service && printf '%s\n' "$LAB_OUT"
}

reloads()
{
	ctr journalctl -u dotgw.service -o cat
	printf '%s\n' "$LAB_OUT" | grep -c 'reloaded /etc/dotgw/dotgw.conf'
}

# client_summary [DIG-ARGS]: the client's query for www.example.test to the decoy, summed up.
client_summary()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A "$@"
	lab_dig_summary A
}

# --- gateway ---------------------------------------------------------------------------------
lab_log "gateway.yml"
play gateway gateway --check
lab_check_num "--check on a machine without dotgw: no task failed" "$FAILED" -eq 0
lab_notok "--check installed nothing" ctr dpkg -s dotgw
play gateway gateway
[ "$FAILED" = 0 ] || lab_bail "first run of gateway.yml: a task failed"
lab_check_num "first run: it changed things" "$CHANGED" -gt 0
ctr systemctl is-active dotgw.service
lab_check_eq "dotgw.service is active" active "$LAB_OUT"
ctr systemctl is-enabled dotgw.service
lab_check_eq "dotgw.service is enabled" enabled "$LAB_OUT"
lab_ok "dotgw's table is in the container's namespace" lab_dotgw_table_exists
lab_check_eq "forwarding turned on (IPv4, IPv6)" "1 1" \
	"$(ip netns exec "$NS_GW" sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding | paste -sd' ' -)"
ctr stat -c '%U:%G %a' /etc/dotgw/dotgw.conf /etc/dotgw/ca.pem
lab_check_eq "configuration and CA: owners and modes" "$(printf 'root:dotgw 640\nroot:dotgw 644')" \
	"$LAB_OUT"
ctr cat /etc/dotgw/dotgw.conf
lab_check_match "the configuration names the lab's upstream and interface" \
	"upstream = $LAB_UP4#$LAB_AUTH_NAME" "$LAB_OUT"
lab_check_match "scope gateway" '^scope = gateway$' "$LAB_OUT"
PID1=$(main_pid)
DOTGW_UID=$(ctr id -u dotgw && printf '%s' "$LAB_OUT")
HOST_PID=$(lab_ns_procs "$NS_GW" dotgw | head -n 1)
lab_check_match "dotgw runs as user dotgw (uid $DOTGW_UID) with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE" \
	"Uid:[[:space:]]+${DOTGW_UID}[[:space:]].*CapEff:[[:space:]]+0000000000001400" \
	"$(tr '\n' ' ' <"/proc/${HOST_PID:-0}/status" 2>/dev/null)"

up_before=$(lab_upstream_queries)
lab_decoy_reset
lab_check_eq "client's UDP query to the decoy: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(client_summary)"
lab_check_eq "client's TCP query: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (TCP)" "$(client_summary +tcp +nocookie)"
lab_check_num "the upstream saw the queries over DoT" "$(lab_upstream_queries)" -gt "${up_before:-0}"
lab_check_eq "the decoy saw no DNS" 0 "$(lab_decoy_count)"
ctr journalctl -u dotgw.service -o cat
lab_check_match "the query log names the client" "$LAB_CLIENT4.*www\.example\.test" "$LAB_OUT"

play gateway gateway
lab_check_eq "second run: idempotent" "0 0" "$CHANGED $FAILED"

lab_log "changed variables: reload"
printf 'dotgw_cache_size: 1M\ndotgw_hold_timeout: 5000\n' >>"$LAB_DIR/inv-gateway/group_vars/all.yml"
r0=$(reloads)
play gateway gateway --check --diff
lab_check_num "--check --diff: no task failed" "$FAILED" -eq 0
lab_check_match "--check --diff shows the new line" '^\+cache-size = 1M' "$(cat "$PLAY_OUT")"
lab_check_match "--check --diff shows the hold timeout" '^\+hold-timeout = 5000' "$(cat "$PLAY_OUT")"
ctr grep -c '^cache-size\|^hold-timeout' /etc/dotgw/dotgw.conf
lab_check_eq "--check changed nothing in the file" 0 "$LAB_OUT"
lab_check_eq "--check did not reload" "$r0" "$(reloads)"
play gateway gateway
lab_check_num "variables changed: no task failed" "$FAILED" -eq 0
lab_check_num "variables changed: the file changed" "$CHANGED" -gt 0
lab_check_match "the reload handler ran" 'RUNNING HANDLER \[dotgw : Reload dotgw\]' "$LAB_OUT"
lab_check_eq "reloaded, not restarted: same MainPID" "$PID1" "$(main_pid)"
lab_check_eq "dotgw logged one more reload" "$((r0 + 1))" "$(reloads)"
ctr grep -c '^cache-size = 1M$\|^hold-timeout = 5000$' /etc/dotgw/dotgw.conf
lab_check_eq "the new settings are in the file" 2 "$LAB_OUT"

# a reload keeps the running metrics listener (with a warning): its change must restart
lab_log "a restart-only change the reload would ignore: metrics"
printf 'dotgw_metrics: "127.0.0.1:9153"\n' >>"$LAB_DIR/inv-gateway/group_vars/all.yml"
play gateway gateway
lab_check_num "metrics changed: no task failed" "$FAILED" -eq 0
lab_check_match "metrics changed: the restart handler ran" \
	'RUNNING HANDLER \[dotgw : Restart dotgw\]' "$LAB_OUT"
PIDM=$(main_pid)
lab_ok "metrics changed: a new MainPID ($PID1 -> $PIDM)" test "$PIDM" != "$PID1" -a "$PIDM" != 0
PID1=$PIDM

lab_log "a restart-only change: mode nfqueue, fail closed"
printf 'dotgw_mode: nfqueue\ndotgw_fail: closed\n' >>"$LAB_DIR/inv-gateway/group_vars/all.yml"
play gateway gateway
lab_check_num "mode changed: no task failed" "$FAILED" -eq 0
lab_check_match "the restart handler ran" 'RUNNING HANDLER \[dotgw : Restart dotgw\]' "$LAB_OUT"
PID2=$(main_pid)
lab_ok "restarted: a new MainPID ($PID1 -> $PID2)" test "$PID2" != "$PID1" -a "$PID2" != 0
ctr journalctl -u dotgw.service -o cat
lab_check_match "dotgw runs in nfqueue mode" 'nfqueue' "$(printf '%s\n' "$LAB_OUT" | tail -n 20)"
lab_decoy_reset
lab_check_eq "nfqueue: the client's query is answered over DoT" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(client_summary)"
lab_check_eq "nfqueue: the decoy saw no DNS" 0 "$(lab_decoy_count)"
play gateway gateway
lab_check_eq "run after the reload and the restart: idempotent" "0 0" "$CHANGED $FAILED"

# --- host ------------------------------------------------------------------------------------
# fail closed from the start: uninstall.yml must later lift the block the stopped dotgw leaves
lab_log "host.yml on the same machine (scope host, tproxy, fail closed; the package from a URL)"
printf 'dotgw_fail: closed\n' >>"$LAB_DIR/inv-host/group_vars/all.yml"
ctr rm -f /var/cache/dotgw/dotgw.deb
play host host
lab_check_num "host: no task failed" "$FAILED" -eq 0
lab_check_num "host: it changed things" "$CHANGED" -gt 0
lab_check_match "the package was fetched from the URL" '"GET /dotgw.deb HTTP/1.1" 200' \
	"$(cat "$LAB_DIR/www.log")"
ctr cat /etc/dotgw/dotgw.conf
lab_check_match "scope host" '^scope = host$' "$LAB_OUT"
lab_check_match "fail closed" '^fail = closed$' "$LAB_OUT"
lab_check_nomatch "no interface line" '^interface' "$LAB_OUT"
ctr dig +time=3 +tries=2 @"$LAB_DECOY4" www.example.test A
lab_check_eq "the machine's own query to the decoy: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_decoy_reset
lab_check_eq "the client's query is no longer captured: the decoy answers" \
	"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (UDP)" "$(client_summary)"
play host host
lab_check_eq "host: second run idempotent" "0 0" "$CHANGED $FAILED"

# --- uninstall -------------------------------------------------------------------------------
lab_log "uninstall.yml (it stops the fail-closed dotgw, which leaves its block behind)"
play host uninstall
lab_check_num "uninstall: no task failed" "$FAILED" -eq 0
lab_check_num "uninstall: it changed things" "$CHANGED" -gt 0
lab_check_match "uninstall lifted the block the stopped fail-closed dotgw left" '^changed' \
	"$(grep -A1 "TASK \[dotgw : Remove dotgw's table" "$PLAY_OUT")"
lab_check_eq "no nftables table is left in the machine's namespace" "" \
	"$(ip netns exec "$NS_GW" nft list tables)"
lab_check_nomatch "no fwmark policy rule is left" '0xd07' "$(ip -n "$NS_GW" rule)"
lab_check_eq "routing table 853 is empty" "" "$(ip -n "$NS_GW" route show table 853 2>/dev/null)"
lab_notok "the package is purged" ctr dpkg -s dotgw
lab_notok "/etc/dotgw and /var/cache/dotgw are gone" ctr ls -d /etc/dotgw /var/cache/dotgw
ctr dig +time=3 +tries=2 @"$LAB_DECOY4" www.example.test A
lab_check_eq "the machine's own DNS reaches the decoy again" \
	"NOERROR $LAB_DECOY_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
play host uninstall
lab_check_eq "uninstall: second run idempotent" "0 0" "$CHANGED $FAILED"

wait "$LINT_PID"
LAB_RC=$?
lab_bg_forget "$LINT_PID"
LAB_OUT=$(cat "$LAB_DIR/lint.out")
# shellcheck disable=SC2034 # lib.sh's lab_fail prints it
LAB_CMD="ansible-lint --offline --nocolor --profile production (in $ANSIBLE_DIR)"
lab_check_eq "ansible-lint passes with the production profile" 0 "$LAB_RC"

lab_finish
