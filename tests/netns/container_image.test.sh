#!/bin/bash
# container_image.test.sh - the container image (Containerfile, docs/container.md): build it
# with podman on a Debian 12 base made from the debian_image fixture, run it the way the
# documentation says (host networking, six capabilities, a mounted configuration and CA),
# with "host" being the lab's gateway namespace, and check that it serves:
#
#   DIR/root.tar  --podman import-->  localhost/<lab id>-base   (Debian 12, offline)
#   this tree --podman build --build-arg BASE=that-->  localhost/<lab id>
#               (the default target: compile, cpack, install the package in a fresh stage)
#
#   client --- gw-c [gateway: nsenter --net=GW podman run --network host IMAGE] gw-u --- upstream
#                   (dotgw in the container: table, policy routing, DoT)     gw-d --- decoy
#
# Checks: the image runs /usr/sbin/dotgw of the build under test; the container's dotgw runs in
# the gateway's namespace, installs its table there, answers the client (UDP and TCP, IPv4 and
# IPv6) and the gateway itself with the upstream's answers over DoT while the decoy sees
# nothing; it runs as user dotgw with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE only (every
# thread), under no_new_privs; 'podman kill -s HUP' reloads the mounted configuration;
# 'podman stop' reaches dotgw (PID 1) with SIGTERM, which removes its table and policy routing
# and exits 0; with fail = closed, 'podman kill' (SIGKILL) leaves the block and a 'dotgw
# --remove-rules' container lifts it; and the machine's own namespace gained no table, rule
# or interface.
#
# The default target compiles this source tree in its build stage: apt-get downloads the build
# dependencies from the base's Debian mirror, so the build runs with --network host, in the
# machine's own namespace, where it only downloads (60-90 s on 2 CPUs).
# DOTGW_CONTAINER_BUILD=prebuilt builds --target prebuilt instead from the fixture's package
# (the build under test, checked to be the very binary), offline (--network none), in seconds.
#
# Containers and images get names unique to this run and are removed on exit, before the lab.
# Where the machine's podman cannot run a container with its defaults (crun on a hybrid
# cgroup hierarchy; no CAP_SYS_RESOURCE to raise the default rlimits), the test switches to
# runc and explicit --ulimit options and says so.
#
# Usage: DOTGW_DEBIAN_IMAGE=DIR container_image.test.sh PATH-TO-DOTGW
#   DIR holds dotgw.deb and root.tar (tests/debian-image.sh PATH-TO-DOTGW DIR).

# The upstream and decoy servers must outlive the whole run (several minutes on a loaded
# machine), not lib.sh's default 300 s.
LAB_PROC_TIMEOUT=${LAB_PROC_TIMEOUT:-900}
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
# shellcheck source=container_lib.sh
. "$(dirname "$0")/container_lib.sh"
# shellcheck disable=SC2119 # no tools beyond the common ones
ctr_require
lab_require_dotgw "${1:-}"

CTR="$LAB_ID-open"
CTR_CLOSED="$LAB_ID-closed"

ctr_build

out=$(pod image inspect -f '{{json .Config.Entrypoint}} {{.Config.StopSignal}}' "$IMG" 2>&1)
lab_check_eq "image: entrypoint dotgw --config /etc/dotgw/dotgw.conf, stop signal SIGTERM" \
	'["/usr/sbin/dotgw","--config","/etc/dotgw/dotgw.conf"] SIGTERM' "$out"
out=$(pod run --rm --network none "${CTR_OPTS[@]}" "$IMG" --version 2>&1)
lab_check_eq "image: dotgw --version is that of the build under test" \
	"$("$DOTGW" --version 2>&1)" "$out"
if [ "$BUILD_MODE" = prebuilt ]; then
	# The very binary of the package (the build under test's, stripped by CPack).
	dpkg_sum=$(dpkg-deb --fsys-tarfile "$IMAGE_DIR/dotgw.deb" 2>/dev/null |
		tar -xO ./usr/sbin/dotgw 2>/dev/null | sha256sum | cut -d' ' -f1)
	img_sum=$(pod run --rm --network none "${CTR_OPTS[@]}" --entrypoint sha256sum "$IMG" \
		/usr/sbin/dotgw 2>&1 | cut -d' ' -f1)
	lab_check_eq "image: /usr/sbin/dotgw is the package's" "$dpkg_sum" "$img_sum"
fi
out=$(pod run --rm --network none "${CTR_OPTS[@]}" "$IMG" --check-config 2>&1)
lab_check_match "image: its default /etc/dotgw/dotgw.conf checks" '^dotgw: configuration OK' "$out"

# ---------------------------------------------------------------------------------------------
lab_setup
CONF_DIR="$LAB_DIR/etc-dotgw"
if ! { mkdir -p "$CONF_DIR" && chmod 755 "$CONF_DIR" &&
	cp -- "$LAB_CA" "$CONF_DIR/lab-ca.pem" && chmod 644 "$CONF_DIR/lab-ca.pem"; }; then
	lab_bail "configuration directory $CONF_DIR"
fi
CONF="$CONF_DIR/dotgw.conf"
# write_conf [EXTRA-LINE]...: the configuration the container mounts (rewritten in place, so
# that the bind-mounted file shows the change).
write_conf()
{
	{
		printf '%s\n' "upstream = $LAB_UP4#$LAB_AUTH_NAME" "ca-file = /etc/dotgw/lab-ca.pem" \
			"scope = both" "interface = $LAB_GW_IF_CLIENT" "log-level = info" \
			"cache-size = 0" "$@"
	} >"$CONF" && chmod 644 "$CONF"
}

CAPS=(--cap-drop all --cap-add NET_ADMIN --cap-add NET_RAW --cap-add NET_BIND_SERVICE
	--cap-add SETUID --cap-add SETGID --cap-add SETPCAP)
MOUNTS=(-v "$CONF:/etc/dotgw/dotgw.conf:ro" -v "$CONF_DIR/lab-ca.pem:/etc/dotgw/lab-ca.pem:ro")


# ctr_logs NAME: the container's log (dotgw's stderr) into DOTGW_LOG, shown by failing checks.
ctr_logs()
{
	DOTGW_LOG="$LAB_DIR/$1.log"
	pod logs "$1" >"$DOTGW_LOG" 2>&1
}

ctr_state()
{
	pod inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>&1
}

# start_ctr NAME [DOTGW-OPTION]...: run the image detached in the gateway's namespace and wait
# (up to 20 s) for dotgw's "ready". Sets CTR_PID (dotgw, as the machine sees it).
start_ctr()
{
	local name=$1 i
	shift
	CONTAINERS+=("$name")
	lab_log "starting container $name"
	if ! gw_podman run -d --name "$name" --network host --read-only \
		--security-opt no-new-privileges "${CAPS[@]}" "${CTR_OPTS[@]}" "${MOUNTS[@]}" \
		"$IMG" "$@"; then
		lab_fail "$name: podman run -d --network host in the gateway's namespace"
		return 1
	fi
	LAB_CMD= # failing checks show the container's log instead
	for ((i = 0; i < 80; i++)); do
		ctr_logs "$name"
		grep -q ' ready: ' "$DOTGW_LOG" && break
		[[ "$(ctr_state "$name")" == running* ]] || break
		lab_sleep 0.25
	done
	if ! grep -q ' ready: ' "$DOTGW_LOG"; then
		lab_fail "$name: dotgw did not log 'ready' (container: $(ctr_state "$name"))"
		return 1
	fi
	CTR_PID=$(pod inspect -f '{{.State.Pid}}' "$name" 2>/dev/null)
	lab_pass "$name: dotgw ready in the container (pid $CTR_PID on this machine)"
}

fwmark_rules()
{
	{ ip -n "$NS_GW" -4 rule show; ip -n "$NS_GW" -6 rule show; } | grep -c fwmark
}

# field FILE NAME: the value of "NAME:" in a /proc status file, tabs made single spaces.
field()
{
	sed -n "s/^$2:[[:space:]]*//p" "$1" | tr -s '\t ' '  '
}

lab_log "fail open: serve, reload, stop"
write_conf
lab_upstream_reset
lab_decoy_reset
start_ctr "$CTR" || lab_finish
lab_check_eq "$CTR: running" "running 0" "$(ctr_state "$CTR")"
lab_check_eq "$CTR: the container's process is dotgw" dotgw "$(cat "/proc/$CTR_PID/comm" 2>&1)"
lab_check_eq "$CTR: dotgw is in the gateway's network namespace (--network host)" \
	"$(stat -L -c %i "/run/netns/$NS_GW")" "$(stat -L -c %i "/proc/$CTR_PID/ns/net" 2>&1)"
lab_ok "$CTR: table inet dotgw in the gateway's namespace" lab_dotgw_table_exists
lab_check_match "$CTR: nft list tables in the gateway's namespace" '^table inet dotgw$' \
	"$(ip netns exec "$NS_GW" nft list tables 2>&1)"
lab_check_num "$CTR: the table has rules" "$(lab_dotgw_rule_count)" -ge 6
lab_check_eq "$CTR: fwmark policy rules (IPv4, IPv6)" 2 "$(fwmark_rules)"
lab_check_match "$CTR: logs 'ready' on stderr (podman logs)" \
	"ready: mode tproxy, scope both, fail open.*$LAB_UP4@853#$LAB_AUTH_NAME; running as dotgw" \
	"$(cat "$DOTGW_LOG")"

ctr_check_client_captured
lab_dig "$NS_GW" @"$LAB_DECOY4" www.example.test A
lab_check_eq "the gateway itself (host scope): the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_check_eq "the decoy saw no query" 0 "$(lab_decoy_count)"
lab_check_num "the upstream answered the queries (over DoT)" "$(lab_upstream_queries)" -ge 3

# As the machine sees the process: user dotgw, two capabilities, every thread.
LAB_CMD=
uid=$(awk -F: '$1 == "dotgw" { print $3 }' "/proc/$CTR_PID/root/etc/passwd" 2>/dev/null)
lab_check_match "$CTR: the image has a system user dotgw (uid $uid)" '^[1-9][0-9]*$' "$uid"
st="/proc/$CTR_PID/status"
lab_check_eq "$CTR: dotgw's Uid (real, effective, saved, fs) is dotgw's" \
	"$uid $uid $uid $uid" "$(field "$st" Uid)"
lab_check_eq "$CTR: CapEff is CAP_NET_ADMIN + CAP_NET_BIND_SERVICE" 0000000000001400 \
	"$(field "$st" CapEff)"
lab_check_eq "$CTR: CapPrm" 0000000000001400 "$(field "$st" CapPrm)"
lab_check_eq "$CTR: CapBnd" 0000000000001400 "$(field "$st" CapBnd)"
lab_check_eq "$CTR: CapAmb" 0000000000000000 "$(field "$st" CapAmb)"
lab_check_eq "$CTR: NoNewPrivs" 1 "$(field "$st" NoNewPrivs)"
bad=()
for task in /proc/"$CTR_PID"/task/*; do
	[ "$(field "$task/status" CapEff) $(field "$task/status" Uid)" = \
		"0000000000001400 $uid $uid $uid $uid" ] || bad+=("${task##*/}")
done
lab_check_eq "$CTR: every thread ($(field "$st" Threads)) has dropped to dotgw, 0x1400" "" \
	"${bad[*]}"

lab_log "reload: SIGHUP through podman kill, after rewriting the mounted file"
LAB_CMD=
write_conf "group = lan=$LAB_CLIENT4/32" "deny = lan:example.test"
before=$(grep -c 'reloaded' "$DOTGW_LOG")
lab_ok "$CTR: podman kill -s HUP" quiet pod kill -s HUP "$CTR"
for ((i = 0; i < 40; i++)); do
	ctr_logs "$CTR"
	[ "$(grep -c 'reloaded' "$DOTGW_LOG")" -gt "$before" ] && break
	lab_sleep 0.25
done
lab_check_match "$CTR: dotgw reloaded" 'reloaded.*1 client groups' "$(cat "$DOTGW_LOG")"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client after the reload: denied by the new configuration" NXDOMAIN \
	"$(lab_dig_status)"
lab_dig "$NS_GW" @"$LAB_DECOY4" www.example.test A
lab_check_eq "the gateway (in no group) still resolves" "NOERROR $LAB_UP_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"

lab_log "podman stop: SIGTERM to dotgw (PID 1)"
LAB_CMD=
t0=$(date +%s%N)
lab_ok "$CTR: podman stop -t 10" quiet pod stop -t 10 "$CTR"
stop_s=$(secs_since "$t0")
ctr_logs "$CTR"
lab_check_eq "$CTR: exited with status 0 (SIGTERM handled, not killed)" "exited 0" \
	"$(ctr_state "$CTR")"
lab_check_num "$CTR: stopped in under 5 s ($stop_s s)" "${stop_s%.*}" -lt 5
lab_check_match "$CTR: dotgw logged the signal" 'signal 15 \(Terminated\): shutting down' \
	"$(cat "$DOTGW_LOG")"
lab_notok "$CTR: stop removed the table" lab_dotgw_table_exists
lab_check_eq "$CTR: stop removed the fwmark rules" 0 "$(fwmark_rules)"
lab_decoy_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client after the stop: plain DNS again (the decoy answers)" \
	"NOERROR $LAB_DECOY_A" "$(lab_dig_status) $(lab_dig_rdata A)"
lab_check_num "the decoy saw it" "$(lab_decoy_count)" -gt 0

lab_log "nfqueue, fail closed: podman kill (SIGKILL) leaves the block, --remove-rules lifts it"
write_conf "mode = nfqueue" "fail = closed"
start_ctr "$CTR_CLOSED" || lab_finish
lab_check_match "$CTR_CLOSED: nfqueue mode, fail closed" 'ready: mode nfqueue .*fail closed' \
	"$(cat "$DOTGW_LOG")"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client, nfqueue: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
LAB_CMD=
lab_ok "$CTR_CLOSED: podman kill (SIGKILL)" quiet pod kill "$CTR_CLOSED"
for ((i = 0; i < 40; i++)); do
	[[ "$(ctr_state "$CTR_CLOSED")" == exited* ]] && break
	lab_sleep 0.25
done
lab_check_eq "$CTR_CLOSED: killed (status 137)" "exited 137" "$(ctr_state "$CTR_CLOSED")"
lab_ok "$CTR_CLOSED: the table stays after SIGKILL" lab_dotgw_table_exists
lab_decoy_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A +time=1 +tries=1
lab_check_eq "client while blocked: no answer" "" "$(lab_dig_status)"
lab_check_eq "client while blocked: the decoy saw nothing" 0 "$(lab_decoy_count)"
gw_podman run --rm --network host --cap-drop all --cap-add NET_ADMIN "${CTR_OPTS[@]}" \
	"${MOUNTS[@]}" "$IMG" --remove-rules
lab_check_eq "podman run ... --remove-rules exits 0" 0 "$LAB_RC"
lab_notok "--remove-rules removed the table" lab_dotgw_table_exists
lab_check_eq "--remove-rules removed the fwmark rules" 0 "$(fwmark_rules)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client after --remove-rules: plain DNS again" "NOERROR $LAB_DECOY_A" \
	"$(lab_dig_status) $(lab_dig_rdata A)"

lab_log "the machine's own namespace"
ctr_check_root_unchanged
lab_finish
