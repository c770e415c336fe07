#!/bin/bash
# podman_lab.sh - real Podman containers on a Podman bridge network (netavark) of the lab's
# gateway, for podman_bridge.test.sh and egress_podman.test.sh. Source it after lab.sh's
# lab_setup, then call pd_lab_setup.
#
# Everything podman keeps lives in this run's directory (--root, --runroot, the network
# configuration directory, CONTAINERS_CONF choosing netavark): no image is pulled or stored;
# the containers run from a root directory made here of this machine's binaries and the
# libraries they link. Podman runs in the gateway's namespace (nsenter --net), so netavark
# builds its bridge and firewall rules there. Containers and the network are removed on exit.

# pd_lab_setup BINARY...: br_netfilter on in the gateway (as Podman and Docker leave it:
# bridge-nf-call-iptables=1; skip when there is none), the lab's client link removed (its
# 198.51.100.0/24 would overlap the containers' network), the containers' root made of
# BINARY... (paths), and the network: 198.51.100.128/25 and 2001:db8:100:1::/64, no
# aardvark-dns. Sets PD, ROOTFS, NET, BR (the bridge's name).
pd_lab_setup()
{
	local bin f
	if ! ip netns exec "$NS_GW" sysctl -qw net.bridge.bridge-nf-call-iptables=1 \
		net.bridge.bridge-nf-call-ip6tables=1 2>/dev/null; then
		lab_skip "no br_netfilter here (net.bridge.bridge-nf-call-iptables is missing)"
	fi
	ip -n "$NS_GW" link del "$LAB_GW_IF_CLIENT" || lab_bail "removing the lab's client link"
	PD="$LAB_DIR/podman"
	ROOTFS="$PD/rootfs"
	NET="$LAB_ID-net"
	CONTAINERS=()
	mkdir -p "$PD/net" "$ROOTFS/etc" "$ROOTFS/tmp" || lab_bail "mkdir $PD"
	printf '[network]\nnetwork_backend = "netavark"\n' >"$PD/containers.conf"
	export CONTAINERS_CONF="$PD/containers.conf"
	PODMAN=(podman --root "$PD/root" --runroot "$PD/run" --storage-driver vfs
		--network-config-dir "$PD/net")
	CTR_OPTS=()
	trap pd_cleanup EXIT
	for bin in "$@"; do
		for f in "$bin" $(ldd "$bin" | grep -Eo '/[^ ]+'); do
			mkdir -p "$ROOTFS$(dirname "$f")" && cp -L "$f" "$ROOTFS$f" ||
				lab_bail "copying $f into the container root"
		done
	done
	printf 'hosts: files dns\n' >"$ROOTFS/etc/nsswitch.conf"
	printf 'root:x:0:0:root:/:/nonexistent\n' >"$ROOTFS/etc/passwd"
	printf 'root:x:0:\n' >"$ROOTFS/etc/group"
	: >"$ROOTFS/etc/hosts"
	: >"$ROOTFS/etc/resolv.conf"
	pd network create --disable-dns --ipv6 --subnet 198.51.100.128/25 \
		--gateway 198.51.100.129 --subnet 2001:db8:100:1::/64 --gateway 2001:db8:100:1::1 \
		"$NET"
	[ "$LAB_RC" = 0 ] || lab_bail "podman network create"
	pd network inspect -f '{{.NetworkInterface}}' "$NET"
	BR=$LAB_OUT
	[ "$LAB_RC" = 0 ] && [ -n "$BR" ] || lab_bail "podman network inspect: no bridge name"
	lab_pass "podman network $NET (netavark): bridge $BR"
}

# pd CMD...: podman in the gateway's namespace (nsenter --net, as container_image.test.sh
# explains), output in LAB_OUT, status in LAB_RC.
pd()
{
	lab_capture "[gw] podman $*" nsenter --net="/run/netns/$NS_GW" timeout 60 \
		"${PODMAN[@]}" "$@"
}

# shellcheck disable=SC2317 # called by the EXIT trap
pd_cleanup()
{
	local rc=$? c
	trap '' INT TERM HUP
	for c in "${CONTAINERS[@]}"; do
		nsenter --net="/run/netns/$NS_GW" timeout 30 "${PODMAN[@]}" rm -f -t 0 "$c" \
			>/dev/null 2>&1
	done
	nsenter --net="/run/netns/$NS_GW" timeout 30 "${PODMAN[@]}" network rm -f "$NET" \
		>/dev/null 2>&1
	(exit "$rc")
	lab_cleanup
}

# start_ctr NAME OPTION...: a container that sleeps, on the network; 1 when podman cannot
# run it (LAB_OUT says why). Retries once with explicit --ulimit where podman cannot set its
# default rlimits.
start_ctr()
{
	local name=$1 try
	shift
	CONTAINERS+=("$name")
	for ((try = 0; try < 3; try++)); do
		pd run -d --name "$name" --network "$NET" "${CTR_OPTS[@]}" "$@" \
			--rootfs "$ROOTFS" "$(command -v sleep)" 600 && return 0
		RUN_OUT=$LAB_OUT
		pd rm -f -t 0 "$name"
		LAB_OUT=$RUN_OUT
		if [[ "$LAB_OUT" == *rlimit* ]] && [ "${#CTR_OPTS[@]}" = 0 ]; then
			lab_log "podman cannot set its default rlimits here: explicit --ulimit"
			CTR_OPTS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)"
				--ulimit nproc=4096:4096)
		else
			break
		fi
	done
	return 1
}
