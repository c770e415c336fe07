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
if [ -z "${DOTGW_DEBIAN_IMAGE:-}" ]; then
	lab_skip "DOTGW_DEBIAN_IMAGE is not set: this test runs only in the gcc pass, with the" \
		"debian_image fixture (tests/debian-image.sh)"
fi
lab_require_tools "${LAB_TOOLS[@]}" podman nsenter stat dpkg-deb sha256sum tar
lab_require_dotgw "${1:-}"

SRC=$(cd -- "$(dirname -- "$0")/../.." && pwd)
CONTAINERFILE="$SRC/Containerfile"
IMAGE_DIR=$(cd -- "$DOTGW_DEBIAN_IMAGE" 2>/dev/null && pwd) ||
	lab_skip "DOTGW_DEBIAN_IMAGE=$DOTGW_DEBIAN_IMAGE is not a directory"
BUILD_MODE=${DOTGW_CONTAINER_BUILD:-source}
for f in dotgw.deb root.tar; do
	[ -s "$IMAGE_DIR/$f" ] ||
		lab_skip "$IMAGE_DIR/$f is missing: the debian_image fixture did not make it"
done
[ -r "$CONTAINERFILE" ] || lab_bail "no Containerfile at $CONTAINERFILE"
case $BUILD_MODE in
prebuilt | source) ;;
*) lab_bail "DOTGW_CONTAINER_BUILD must be prebuilt or source, not '$BUILD_MODE'" ;;
esac

# Names of this run (LAB_ID is dotgw-PID-RANDOM: lowercase, valid as an image name).
BASE_IMG="localhost/$LAB_ID-base:latest"
IMG="localhost/$LAB_ID:latest"
CTR="$LAB_ID-open"
CTR_CLOSED="$LAB_ID-closed"
IMAGES=()     # images this run made, removed on exit
CONTAINERS=() # containers this run made, removed on exit
PODMAN=(podman)
LONG_PID=
CTR_OPTS=() # --ulimit options, where this machine needs them (see probe_podman)

# ctr_cleanup: remove our containers and images, then the lab (lib.sh's EXIT trap).
# shellcheck disable=SC2317 # called by the EXIT trap
ctr_cleanup()
{
	local rc=$? c i
	trap '' INT TERM HUP
	if [ -n "$LONG_PID" ]; then
		# an import or build still running: stop it before removing what it makes
		kill -TERM "$LONG_PID" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			kill -0 "$LONG_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$LONG_PID" 2>/dev/null
		wait "$LONG_PID" 2>/dev/null
		# and the build's working containers ("<lab id>-base-working-container"), which an
		# interrupted podman build leaves behind
		mapfile -t -O "${#CONTAINERS[@]}" CONTAINERS < <(timeout 30 "${PODMAN[@]}" ps -a \
			--external --format '{{.ID}} {{.Names}}' 2>/dev/null | awk -v id="$LAB_ID" \
			'index($2, id) { print $1 }')
	fi
	for c in "${CONTAINERS[@]}"; do
		timeout 30 "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1
	done
	for ((i = ${#IMAGES[@]} - 1; i >= 0; i--)); do
		timeout 60 "${PODMAN[@]}" rmi -f "${IMAGES[$i]}" >/dev/null 2>&1
	done
	(exit "$rc")
	lab_cleanup
}
trap ctr_cleanup EXIT

# The machine's own namespace, to compare at the end: nothing here may change it.
root_state()
{
	case $1 in
	tables) nft list tables 2>&1 ;;
	rules) ip -4 rule show 2>&1; ip -6 rule show 2>&1 ;;
	links) ip -o link show 2>&1 | awk -F': ' '{ print $2 }' | sort ;;
	esac
}
ROOT_TABLES=$(root_state tables)
ROOT_RULES=$(root_state rules)
ROOT_LINKS=$(root_state links)

# secs_since START-NS: seconds (one decimal) since a date +%s%N time.
secs_since()
{
	local ms=$((($(date +%s%N) - $1) / 1000000))
	printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# quiet CMD...: run CMD; show its output (indented) only when it fails.
# shellcheck disable=SC2317 # called through lab_ok
quiet()
{
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" = 0 ] || printf '%s\n' "$out" | lab_indent
	return "$rc"
}

# pod CMD...: podman (with the options this machine needs) under a timeout, in the machine's
# namespace: for what needs no network (images, inspect, logs, stop, kill, rm).
pod()
{
	timeout 60 "${PODMAN[@]}" "$@"
}

# pod_long SECONDS CMD...: the same for the import and the build, in the background and waited
# for, so that Ctrl-C or SIGTERM ends the test at once (the cleanup stops LONG_PID first).
pod_long()
{
	local t=$1 rc
	shift
	timeout "$t" "${PODMAN[@]}" "$@" &
	LONG_PID=$!
	wait "$LONG_PID"
	rc=$?
	LONG_PID=
	return "$rc"
}

# ---------------------------------------------------------------------------------------------
lab_tmpdir
lab_log "importing $IMAGE_DIR/root.tar as $BASE_IMG"
t0=$(date +%s%N)
IMAGES+=("$BASE_IMG")
if ! pod_long 300 import "$IMAGE_DIR/root.tar" "$BASE_IMG" >"$LAB_DIR/import.log" 2>&1; then
	lab_bail "podman import root.tar" "$(tail -n 20 "$LAB_DIR/import.log")"
fi
lab_pass "podman import: the Debian 12 root as $BASE_IMG ($(secs_since "$t0") s)"

# probe_podman: find the options with which this podman runs a container here (no network:
# --network none), at most three tries; on failure PROBE_OUT says why.
probe_podman()
{
	local try
	for ((try = 0; try < 3; try++)); do
		PROBE_OUT=$(pod run --rm --network none "${CTR_OPTS[@]}" "$BASE_IMG" true 2>&1) &&
			return 0
		if [[ "$PROBE_OUT" == *"hybrid mode"* ]] && [ "${#PODMAN[@]}" = 1 ] &&
			command -v runc >/dev/null; then
			lab_log "crun cannot run containers on this cgroup hierarchy: using runc"
			PODMAN+=(--runtime runc)
		elif [[ "$PROBE_OUT" == *rlimit* ]] && [ "${#CTR_OPTS[@]}" = 0 ]; then
			lab_log "podman cannot set its default rlimits here (no CAP_SYS_RESOURCE?):" \
				"--ulimit nofile=$(ulimit -Hn) nproc=4096"
			CTR_OPTS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
		else
			break
		fi
	done
	return 1
}
probe_podman || lab_skip "podman cannot run a container on this machine: $PROBE_OUT"
lab_pass "podman runs a container here (${PODMAN[*]} ${CTR_OPTS[*]})"

# ---------------------------------------------------------------------------------------------
BUILD_ARGS=(--pull=never --layers=false --force-rm "${CTR_OPTS[@]}" -f "$CONTAINERFILE"
	--build-arg "BASE=$BASE_IMG" -t "$IMG")
if [ "$BUILD_MODE" = prebuilt ]; then
	# The build context: the fixture's package and the script that installs it.
	CTX="$LAB_DIR/context"
	mkdir -p "$CTX/packaging" || lab_bail "mkdir $CTX/packaging"
	cp -- "$IMAGE_DIR/dotgw.deb" "$CTX/dotgw.deb" || lab_bail "cp dotgw.deb $CTX"
	cp -- "$SRC/packaging/container-install.sh" "$CTX/packaging/" ||
		lab_bail "cp container-install.sh $CTX"
	BUILD_ARGS+=(--network none --target prebuilt "$CTX")
	BUILD_TIMEOUT=300
else
	BUILD_ARGS+=(--network host "$SRC")
	BUILD_TIMEOUT=900
fi
lab_log "building $IMG ($BUILD_MODE): podman build ${BUILD_ARGS[*]}"
t0=$(date +%s%N)
IMAGES+=("$IMG")
if ! pod_long "$BUILD_TIMEOUT" build "${BUILD_ARGS[@]}" >"$LAB_DIR/build.log" 2>&1; then
	lab_bail "podman build ($BUILD_MODE)" "$(grep -v '^(Reading database' "$LAB_DIR/build.log" |
		tail -n 40)"
fi
BUILD_S=$(secs_since "$t0")
IMG_SIZE=$(pod image inspect -f '{{.Size}}' "$IMG" 2>/dev/null | awk '{ printf "%d", $1 / 1e6 }')
lab_pass "podman build ($BUILD_MODE): $IMG in $BUILD_S s, $IMG_SIZE MB"

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

# gw_podman CMD...: podman in the gateway's network namespace, where "--network host" is the
# lab's gateway, like lab_run (output in LAB_OUT, status in LAB_RC). nsenter --net, not
# "ip netns exec": that one also mounts a sysfs of the namespace over /sys, which hides
# /sys/fs/cgroup from podman and its runtime ("no cgroup mount found").
gw_podman()
{
	lab_capture "[gw] podman $*" nsenter --net="/run/netns/$NS_GW" timeout 60 "${PODMAN[@]}" "$@"
}

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

lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client, UDP/IPv4: the upstream's answer" \
	"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
lab_dig "$NS_CLIENT" @"$LAB_DECOY6" www.example.test AAAA +tcp
lab_check_eq "client, TCP/IPv6: the upstream's answer" \
	"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (TCP)" "$(lab_dig_summary AAAA)"
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
LAB_CMD= # the last command's output says nothing about these
lab_check_eq "no table was added or removed in the machine's namespace" "$ROOT_TABLES" \
	"$(root_state tables)"
lab_check_eq "no policy rule was added or removed in the machine's namespace" "$ROOT_RULES" \
	"$(root_state rules)"
lab_check_eq "no interface was added or removed in the machine's namespace" "$ROOT_LINKS" \
	"$(root_state links)"
lab_finish
