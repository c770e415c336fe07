#!/bin/bash
# kube_play.test.sh - the pod template of kubernetes/ run by `podman kube play` in the lab's
# gateway namespace (issue 22; no cluster here):
#
#   kubectl kustomize kubernetes/overlays/encrypt-only  -->  DaemonSet, ConfigMap, Service, ...
#   python3 + yaml (kube_pod below)                     -->  Pod + ConfigMap (kube.yaml)
#   nsenter --net=GW podman kube play kube.yaml             (hostNetwork: the lab's gateway)
#
# Podman 4.3 (Debian 12) plays Pods and Deployments but not DaemonSets, so the DaemonSet's pod
# template becomes a Pod; nothing else of the template is changed but, explicitly:
#   - the image: the one built from this tree (container_lib.sh, as container_image.test.sh);
#   - priorityClassName and tolerations removed: scheduling, which podman has none of;
#   - the ConfigMap's dotgw.conf: the overlay's, with the lab's upstream (DoT, CA added to the
#     ConfigMap as lab-ca.pem) instead of the public ones and the lab's client link (gw-c)
#     instead of the CNI's pod interfaces; every other line is the overlay's.
# Dropped with the kind: updateStrategy (a DaemonSet's), the Namespace and the Service (podman
# plays neither). Podman ignores dnsPolicy, automountServiceAccountToken, enableServiceLinks,
# resources.requests; it honours hostNetwork, the securityContext (capabilities, read-only
# root, no_new_privs, user), the ConfigMap volume and the probes as far as checked below.
#
# Checks: the pod's container runs dotgw with exactly the declared capabilities; what podman
# made of the three probes (inspect), and that each probe's command, run as the kubelet would
# (podman exec), and `podman healthcheck run` pass; a client's query to the decoy gets the
# upstream's answer over DoT while the decoy sees nothing; `podman kube down` removes the pod,
# dotgw's table goes (fail open: the client reaches the decoy again; podman 4.3's kube down
# SIGKILLs, so this is the crash path), and the machine's own namespace gained no table, rule
# or interface.
#
# The image: DOTGW_CONTAINER_BUILD=prebuilt by default here (the fixture's package, offline, in
# seconds; =source compiles the tree in the image, 60-90 s more).
#
# Usage: DOTGW_DEBIAN_IMAGE=DIR kube_play.test.sh PATH-TO-DOTGW
#   DIR holds dotgw.deb and root.tar (tests/debian-image.sh PATH-TO-DOTGW DIR).

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_root
CTR_BUILD_DEFAULT=prebuilt
# shellcheck source=container_lib.sh
. "$(dirname "$0")/container_lib.sh"
ctr_require kubectl python3
lab_require_dotgw "${1:-}"
kubectl kustomize --help >/dev/null 2>&1 || lab_skip "kubectl has no kustomize"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import yaml' 2>/dev/null || lab_skip "needs python3-yaml"

POD="$LAB_ID"
PCTR="$POD-dotgw" # podman names a pod's container POD-CONTAINER
OVERLAY="$SRC/kubernetes/overlays/encrypt-only"
lab_tmpdir
KUBE="$LAB_DIR/kube.yaml"

# kube_cleanup: the pod (if kube down did not remove it), then the containers, images and lab.
# shellcheck disable=SC2317 # called by the EXIT trap
kube_cleanup()
{
	local rc=$?
		timeout 30 "${PODMAN[@]}" pod rm -f -t 0 "$POD" >/dev/null 2>&1
	(exit "$rc")
	ctr_cleanup
}
trap kube_cleanup EXIT

ctr_build

# podman kube play has no --ulimit and takes no podman-run options: what this machine needs
# (probe_podman) goes into a containers.conf of this run (CONTAINERS_CONF): the rlimits, and
# where catatonit is missing (podman builds its pause image from it), an infra image of the
# base that sleeps.
KCONF="$LAB_DIR/containers.conf"
if [ "${#CTR_OPTS[@]}" -gt 0 ]; then
	printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n' \
		"$(ulimit -Hn)" "$(ulimit -Hn)" >>"$KCONF"
fi
if [ ! -x /usr/libexec/podman/catatonit ] && [ ! -x /usr/bin/catatonit ]; then
	INFRA_IMG="localhost/$LAB_ID-infra:latest"
	printf 'FROM %s\nSTOPSIGNAL SIGKILL\nENTRYPOINT ["/bin/sleep", "infinity"]\n' \
		"$BASE_IMG" >"$LAB_DIR/Containerfile.infra"
	IMAGES+=("$INFRA_IMG")
	pod build --pull=never --network none "${CTR_OPTS[@]}" -f "$LAB_DIR/Containerfile.infra" \
		-t "$INFRA_IMG" "$LAB_DIR" >"$LAB_DIR/infra.log" 2>&1 ||
		lab_bail "podman build $INFRA_IMG" "$(tail -n 20 "$LAB_DIR/infra.log")"
	printf '[engine]\ninfra_image = "%s"\n' "$INFRA_IMG" >>"$KCONF"
	lab_log "no catatonit here: the pod's infra container is $INFRA_IMG (sleep)"
fi
if [ -s "$KCONF" ]; then
	export CONTAINERS_CONF="$KCONF"
	lab_log "CONTAINERS_CONF for kube play: $(tr '\n' ' ' <"$KCONF")"
fi

lab_setup

# kube_pod RENDERED OUT: the Pod and the ConfigMap for podman (see the top of this file); prints
# the template's fields it removed.
kube_pod()
{
	"$PY" - "$1" "$2" "$POD" "$IMG" "$LAB_UP4#$LAB_AUTH_NAME" "$LAB_GW_IF_CLIENT" \
		"$LAB_CA" <<-'PYEOF'
		import re, sys, yaml
		src, out, name, image, upstream, iface, ca = sys.argv[1:]
		docs = [d for d in yaml.safe_load_all(open(src)) if d]
		ds = next(d for d in docs if d["kind"] == "DaemonSet")
		cm = next(d for d in docs if d["kind"] == "ConfigMap")
		spec = ds["spec"]["template"]["spec"]
		removed = [k for k in ("priorityClassName", "tolerations") if spec.pop(k, None)]
		(c,) = spec["containers"]
		c["image"] = image
		conf = []
		for line in cm["data"]["dotgw.conf"].splitlines():
		    if re.match(r"upstream\s*=", line):
		        line = "" if conf and conf[-1].startswith("upstream") else \
		            f"upstream = {upstream}\nca-file = /etc/dotgw/lab-ca.pem"
		    elif re.match(r"interface\s*=", line):
		        line = "" if any(l.startswith("interface") for l in conf) else \
		            f"interface = {iface}"
		    if line:
		        conf.append(line)
		cm["data"]["dotgw.conf"] = "\n".join(conf) + "\n"
		cm["data"]["lab-ca.pem"] = open(ca).read()
		del cm["metadata"]["namespace"]
		pod = {"apiVersion": "v1", "kind": "Pod",
		       "metadata": {"name": name, "labels": ds["spec"]["template"]["metadata"]["labels"]},
		       "spec": spec}
		yaml.safe_dump_all([pod, cm], open(out, "w"), sort_keys=False)
		print(" ".join(removed))
	PYEOF
}

kubectl kustomize "$OVERLAY" >"$LAB_DIR/rendered.yaml" 2>"$LAB_DIR/kustomize.err" ||
	lab_bail "kubectl kustomize $OVERLAY" "$(cat "$LAB_DIR/kustomize.err")"
removed=$(kube_pod "$LAB_DIR/rendered.yaml" "$KUBE" 2>&1)
lab_check_eq "the DaemonSet's pod template as a Pod (scheduling fields removed)" \
	"priorityClassName tolerations" "$removed"
conf=$("$PY" -c 'import sys, yaml; d = list(yaml.safe_load_all(open(sys.argv[1])));
print(d[1]["data"]["dotgw.conf"])' "$KUBE")
lab_check_match "the ConfigMap's dotgw.conf: the lab's upstream, its CA, its client link" \
	"^upstream = $LAB_UP4#$LAB_AUTH_NAME$" "$conf"
printf '%s\n' "$conf" >"$LAB_DIR/dotgw.conf"
sed -i "s|/etc/dotgw/lab-ca.pem|$LAB_CA|" "$LAB_DIR/dotgw.conf"
lab_check_match "  which dotgw --check-config accepts" '^dotgw: configuration OK' \
	"$("$DOTGW" --config "$LAB_DIR/dotgw.conf" --check-config 2>&1)"

lab_log "podman kube play in the gateway's namespace"
# The containers' log in a file of this run, which outlives kube down (the pod's sleeping infra
# container writes nothing to it).
KLOG="$LAB_DIR/pod.log"
gw_podman kube play --log-driver k8s-file --log-opt "path=$KLOG" "$KUBE"
lab_check_eq "podman kube play exits 0" 0 "$LAB_RC"
ctr_logs()
{
	DOTGW_LOG="$LAB_DIR/$1.log"
	pod logs "$1" >"$DOTGW_LOG" 2>&1
}
for ((i = 0; i < 80; i++)); do
	ctr_logs "$PCTR"
	grep -q ' ready: ' "$DOTGW_LOG" && break
	lab_sleep 0.25
done
LAB_CMD=
lab_check_match "$PCTR: dotgw logs 'ready' (encrypt-only: scope both, fail open)" \
	"ready: mode tproxy, scope both, fail open.*$LAB_UP4@853#$LAB_AUTH_NAME" \
	"$(cat "$DOTGW_LOG")"
lab_check_eq "$PCTR: running" running "$(pod inspect -f '{{.State.Status}}' "$PCTR" 2>&1)"
lab_check_eq "pod $POD: running" Running "$(pod pod inspect -f '{{.State}}' "$POD" 2>&1)"
CTR_PID=$(pod inspect -f '{{.State.Pid}}' "$PCTR" 2>/dev/null)
lab_check_eq "$PCTR: dotgw is in the gateway's namespace (hostNetwork)" \
	"$(stat -L -c %i "/run/netns/$NS_GW")" "$(stat -L -c %i "/proc/$CTR_PID/ns/net" 2>&1)"
lab_check_eq "$PCTR: the container's capabilities are the six the manifest adds" \
	"CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SETGID CAP_SETPCAP CAP_SETUID" \
	"$(pod inspect -f '{{range .BoundingCaps}}{{.}} {{end}}' "$PCTR" 2>&1 | tr -s ' ' '\n' |
		grep . | sort | paste -sd' ')"
lab_check_eq "$PCTR: dotgw dropped to NET_ADMIN + NET_BIND_SERVICE, under no_new_privs" \
	"0000000000001400 1" \
	"$(awk '/^CapEff:/ { c = $2 } /^NoNewPrivs:/ { n = $2 } END { print c, n }' \
		"/proc/$CTR_PID/status" 2>&1)"
lab_check_eq "$PCTR: read-only root (readOnlyRootFilesystem)" true \
	"$(pod inspect -f '{{.HostConfig.ReadonlyRootfs}}' "$PCTR" 2>&1)"
lab_ok "$PCTR: table inet dotgw in the gateway's namespace" lab_dotgw_table_exists

lab_log "the probes"
# What podman made of the manifest's probes. Podman 4.3 turns the livenessProbe into the
# container's healthcheck (CMD-SHELL, "|| exit 1" appended) and has no startup healthcheck in
# its inspect output (the startupProbe is not used) nor anything for a readinessProbe.
hc=$(pod inspect -f '{{json .Config.Healthcheck}}' "$PCTR" 2>&1)
lab_log "podman's healthcheck: $hc"
if shc=$(pod inspect -f '{{json .Config.StartupHealthCheck}}' "$PCTR" 2>/dev/null); then
	lab_log "podman's startup healthcheck: $shc"
else
	lab_log "podman's startup healthcheck: none (this podman has no such field)"
fi
lab_check_match "livenessProbe: podman's healthcheck is its command" \
	'dotgw.*--health.*http://127.0.0.1:9853/healthz' "$hc"
gw_podman healthcheck run "$PCTR"
lab_check_eq "podman healthcheck run: healthy (exit 0)" 0 "$LAB_RC"
for p in startupProbe readinessProbe livenessProbe; do
	mapfile -t cmd < <("$PY" -c 'import sys, yaml; d = next(yaml.safe_load_all(open(sys.argv[1])));
print("\n".join(d["spec"]["containers"][0][sys.argv[2]]["exec"]["command"]))' "$KUBE" "$p")
	gw_podman exec "$PCTR" "${cmd[@]}"
	lab_check_eq "$p: podman exec $PCTR ${cmd[*]}: exit 0" 0 "$LAB_RC"
done

lab_log "a client's DNS"
lab_upstream_reset
lab_decoy_reset
ctr_check_client_captured
lab_check_eq "the decoy saw no query" 0 "$(lab_decoy_count)"
lab_check_num "the upstream answered them (over DoT)" "$(lab_upstream_queries)" -ge 2
gw_podman exec "$PCTR" /usr/sbin/dotgw --health http://127.0.0.1:9853/readyz
lab_check_eq "readinessProbe after the queries: exit 0" 0 "$LAB_RC"

lab_log "podman kube down"
STOP_TIMEOUT=$(pod inspect -f '{{.Config.StopTimeout}}' "$PCTR" 2>&1)
t0=$(date +%s%N)
gw_podman kube down "$KUBE"
lab_check_eq "podman kube down exits 0" 0 "$LAB_RC"
lab_log "kube down took $(secs_since "$t0") s (the container's stop timeout: $STOP_TIMEOUT s)"
DOTGW_LOG=$KLOG
LAB_CMD=
# Podman before 5.1 kills a pod's containers at once on kube down, without their stop signal
# (containers/podman#22397): then this is the crash path, where fail open must hold too.
if grep -q 'signal 15 (Terminated)' "$DOTGW_LOG"; then
	lab_log "dotgw got SIGTERM from kube down"
else
	lab_log "kube down killed dotgw without SIGTERM (podman < 5.1, containers/podman#22397):" \
		"its last line: $(tail -n 1 "$DOTGW_LOG" | cut -c 1-120)"
fi
lab_check_eq "the pod is gone" "" "$(pod pod ls -q --filter "name=^$POD\$" 2>&1)"
lab_notok "dotgw's table is gone" lab_dotgw_table_exists
lab_decoy_reset
lab_dig "$NS_CLIENT" @"$LAB_DECOY4" www.example.test A
lab_check_eq "client afterwards: plain DNS again (fail open: the decoy answers)" \
	"NOERROR $LAB_DECOY_A" "$(lab_dig_status) $(lab_dig_rdata A)"

ctr_check_root_unchanged
lab_finish
