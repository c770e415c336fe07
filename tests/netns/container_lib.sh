#!/bin/bash
# container_lib.sh - the container image of this tree, built with podman for a test in the lab:
# shared by container_image.test.sh and kube_play.test.sh. Source it after lib.sh and
# lab_require_root; then ctr_require (the debian_image fixture and the tools, or exit 77),
# ctr_build (import the fixture's Debian 12 root, find the podman options this machine needs,
# build the image) and, after lab_setup, gw_podman, ctr_check_client_captured and, at the end,
# ctr_check_root_unchanged.
#
#   DIR/root.tar  --podman import-->  localhost/<lab id>-base   (Debian 12, offline)
#   this tree --podman build --build-arg BASE=that-->  localhost/<lab id>
#
# DOTGW_CONTAINER_BUILD: source (the default target: compile this tree, apt-get downloading the
# build dependencies from the base's Debian mirror, --network host, 60-90 s) or prebuilt
# (--target prebuilt from the fixture's package, offline, in seconds). Without it, the test's
# CTR_BUILD_DEFAULT, else source.
#
# Images and containers get names unique to this run (IMG, BASE_IMG; the test appends what it
# makes to IMAGES and CONTAINERS) and are removed on exit, before the lab (ctr_cleanup, the
# EXIT trap). PODMAN is the podman command with the global options this machine needs,
# CTR_OPTS the options of "podman run" (see probe_podman).

# ctr_require [TOOL]...: the fixture (DOTGW_DEBIAN_IMAGE) and the tools, or exit 77; sets SRC,
# CONTAINERFILE, IMAGE_DIR, BUILD_MODE.
ctr_require()
{
	local f
	if [ -z "${DOTGW_DEBIAN_IMAGE:-}" ]; then
		lab_skip "DOTGW_DEBIAN_IMAGE is not set: this test runs only in the gcc pass, with the" \
			"debian_image fixture (tests/debian-image.sh)"
	fi
	lab_require_tools "${LAB_TOOLS[@]}" podman nsenter stat dpkg-deb sha256sum tar "$@"

	SRC=$(cd -- "$(dirname -- "$0")/../.." && pwd)
	CONTAINERFILE="$SRC/Containerfile"
	IMAGE_DIR=$(cd -- "$DOTGW_DEBIAN_IMAGE" 2>/dev/null && pwd) ||
		lab_skip "DOTGW_DEBIAN_IMAGE=$DOTGW_DEBIAN_IMAGE is not a directory"
	BUILD_MODE=${DOTGW_CONTAINER_BUILD:-${CTR_BUILD_DEFAULT:-source}}
	for f in dotgw.deb root.tar; do
		[ -s "$IMAGE_DIR/$f" ] ||
			lab_skip "$IMAGE_DIR/$f is missing: the debian_image fixture did not make it"
	done
	[ -r "$CONTAINERFILE" ] || lab_bail "no Containerfile at $CONTAINERFILE"
	case $BUILD_MODE in
	prebuilt | source) ;;
	*) lab_bail "DOTGW_CONTAINER_BUILD must be prebuilt or source, not '$BUILD_MODE'" ;;
	esac
}

# Names of this run (LAB_ID is dotgw-PID-RANDOM: lowercase, valid as an image name).
BASE_IMG="localhost/$LAB_ID-base:latest"
IMG="localhost/$LAB_ID:latest"
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

# ctr_check_root_unchanged: the checks that the machine's own namespace is as it was.
ctr_check_root_unchanged()
{
	# shellcheck disable=SC2034 # read by lab_fail
	LAB_CMD= # the last command's output says nothing about these
	lab_check_eq "no table was added or removed in the machine's namespace" "$ROOT_TABLES" \
		"$(root_state tables)"
	lab_check_eq "no policy rule was added or removed in the machine's namespace" "$ROOT_RULES" \
		"$(root_state rules)"
	lab_check_eq "no interface was added or removed in the machine's namespace" "$ROOT_LINKS" \
		"$(root_state links)"
}

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

# ctr_build: import the fixture's root, probe podman, build IMG from this tree (BUILD_MODE).
ctr_build()
{
	local t0
	lab_tmpdir
	lab_log "importing $IMAGE_DIR/root.tar as $BASE_IMG"
	t0=$(date +%s%N)
	IMAGES+=("$BASE_IMG")
	if ! pod_long 300 import "$IMAGE_DIR/root.tar" "$BASE_IMG" >"$LAB_DIR/import.log" 2>&1; then
		lab_bail "podman import root.tar" "$(tail -n 20 "$LAB_DIR/import.log")"
	fi
	lab_pass "podman import: the Debian 12 root as $BASE_IMG ($(secs_since "$t0") s)"

	probe_podman || lab_skip "podman cannot run a container on this machine: $PROBE_OUT"
	lab_pass "podman runs a container here (${PODMAN[*]} ${CTR_OPTS[*]})"

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
}

# gw_podman CMD...: podman in the gateway's network namespace, where "--network host" is the
# lab's gateway, like lab_run (output in LAB_OUT, status in LAB_RC). nsenter --net, not
# "ip netns exec": that one also mounts a sysfs of the namespace over /sys, which hides
# /sys/fs/cgroup from podman and its runtime ("no cgroup mount found").
gw_podman()
{
	lab_capture "[gw] podman $*" nsenter --net="/run/netns/$NS_GW" timeout 60 "${PODMAN[@]}" "$@"
}

# ctr_check_client_captured: the client's queries to the decoy (UDP/IPv4, TCP/IPv6) get the
# upstream's answers, through the dotgw in the container.
ctr_check_client_captured()
{
	lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
	lab_check_eq "client, UDP/IPv4: the upstream's answer" \
		"NOERROR $LAB_UP_A from $LAB_DECOY4#53 (UDP)" "$(lab_dig_summary A)"
	lab_dig "$NS_CLIENT" @"$LAB_DECOY6" www.example.test AAAA +tcp
	lab_check_eq "client, TCP/IPv6: the upstream's answer" \
		"NOERROR $LAB_UP_AAAA from $LAB_DECOY6#53 (TCP)" "$(lab_dig_summary AAAA)"
}
