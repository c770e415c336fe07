#!/bin/bash
# kubernetes.test.sh - the manifests in kubernetes/ (no cluster, no namespace needed):
#   - `kubectl kustomize` renders the base and every overlay;
#   - the rendered DaemonSet is what docs/kubernetes.md says: hostNetwork, dnsPolicy Default,
#     exactly the capabilities dotgw's start-up needs, read-only root, system-node-critical,
#     every taint tolerated, no declared (host) ports, the three probes running
#     `dotgw --health` on /healthz and /readyz, the ConfigMap the generator made mounted;
#   - the dotgw.conf each rendering carries passes `dotgw --check-config`, and its --metrics
#     port is the probes' and the Service's;
#   - every rendered object validates against the Kubernetes API's JSON schema with npm's
#     kubernetes-models (NODE_PATH: DOTGW_K8S_MODELS, else the k8s-models/node_modules beside
#     the dotgw binary: `npm install --prefix build/k8s-models kubernetes-models@4`), and the
#     validator rejects a broken DaemonSet.
# Exit 77 when kubectl (with kustomize) is missing. Without node or the package, the schema
# part says SKIP and the rest runs.
#
# Usage: kubernetes.test.sh PATH-TO-DOTGW

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lab_require_tools kubectl python3
lab_require_dotgw "${1:-}"
lab_tmpdir
kubectl kustomize --help >/dev/null 2>&1 || lab_skip "kubectl has no kustomize"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
MODELS=${DOTGW_K8S_MODELS:-$(dirname "$DOTGW")/k8s-models/node_modules}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import yaml' 2>/dev/null || lab_skip "needs python3-yaml"

# check_rendering NAME DIR: the checks above on DIR's rendering
check_rendering()
{
	local name=$1 dir=$2 out="$LAB_DIR/$1.yaml" conf="$LAB_DIR/$1.conf" facts
	if ! kubectl kustomize "$dir" >"$out" 2>"$LAB_DIR/$name.err"; then
		lab_fail "[$name] kubectl kustomize renders it" "$(lab_indent <"$LAB_DIR/$name.err")"
		return
	fi
	lab_pass "[$name] kubectl kustomize renders it"
	# one fact per line, compared as a whole: a difference shows every fact at once
	facts=$("$PY" - "$out" "$conf" <<-'PYEOF'
		import sys, yaml
		docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
		kinds = sorted(d["kind"] for d in docs)
		ds = next(d for d in docs if d["kind"] == "DaemonSet")
		cm = next(d for d in docs if d["kind"] == "ConfigMap")
		svc = next(d for d in docs if d["kind"] == "Service")
		open(sys.argv[2], "w").write(cm["data"]["dotgw.conf"])
		ps = ds["spec"]["template"]["spec"]
		c = ps["containers"][0]
		sc = c["securityContext"]
		ru = ds["spec"]["updateStrategy"]
		print("kinds", " ".join(kinds))
		print("containers", len(ps["containers"]))
		print("hostNetwork", ps.get("hostNetwork"))
		print("dnsPolicy", ps.get("dnsPolicy"))
		print("priorityClassName", ps.get("priorityClassName"))
		print("tolerations", ps.get("tolerations"))
		print("ports", c.get("ports"), "hostPort" in str(ds))
		print("caps drop", sc["capabilities"]["drop"], "add", sorted(sc["capabilities"]["add"]))
		print("readOnlyRootFilesystem", sc.get("readOnlyRootFilesystem"))
		print("allowPrivilegeEscalation", sc.get("allowPrivilegeEscalation"))
		print("privileged", sc.get("privileged"))
		print("update", ru["type"], ru["rollingUpdate"])
		for p in ("startupProbe", "readinessProbe", "livenessProbe"):
		    print(p, " ".join(c[p]["exec"]["command"]))
		vol = next(v for v in ps["volumes"] if v["name"] == "config")
		print("config volume is the ConfigMap", vol["configMap"]["name"] == cm["metadata"]["name"])
		print("mount", [m["mountPath"] for m in c["volumeMounts"]])
		print("requests", c["resources"]["requests"])
		print("service port", svc["spec"]["ports"][0]["targetPort"])
		print("namespace", sorted({d["metadata"].get("namespace", "-") for d in docs}))
	PYEOF
	)
	lab_check_eq "[$name] the DaemonSet, the Service and the ConfigMap" "kinds ConfigMap DaemonSet Namespace Service
containers 1
hostNetwork True
dnsPolicy Default
priorityClassName system-node-critical
tolerations [{'operator': 'Exists'}]
ports None False
caps drop ['ALL'] add ['NET_ADMIN', 'NET_BIND_SERVICE', 'NET_RAW', 'SETGID', 'SETPCAP', 'SETUID']
readOnlyRootFilesystem True
allowPrivilegeEscalation False
privileged False
update RollingUpdate {'maxSurge': 1, 'maxUnavailable': 0}
startupProbe /usr/sbin/dotgw --health http://127.0.0.1:9853/readyz
readinessProbe /usr/sbin/dotgw --health http://127.0.0.1:9853/readyz
livenessProbe /usr/sbin/dotgw --health http://127.0.0.1:9853/healthz
config volume is the ConfigMap True
mount ['/etc/dotgw']
requests {'cpu': '50m', 'memory': '24Mi'}
service port 9853
namespace ['-', 'dotgw']" "$facts"
	lab_capture "dotgw --check-config --config $name.conf" "$DOTGW" --check-config --config "$conf"
	lab_check_eq "[$name] its dotgw.conf passes dotgw --check-config" 0 "$LAB_RC"
	lab_check_eq "[$name] its --metrics listens on the probes' port, on every address" \
		"metrics = 0.0.0.0:9853" "$(grep '^metrics' "$conf")"
	lab_check_match "[$name] cluster.local is left to CoreDNS" "^forward = cluster.local=asked" \
		"$(cat "$conf")"
	if [ -n "$VALIDATE" ]; then
		"$PY" -c 'import sys, yaml, json
print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))' "$out" \
			>"$LAB_DIR/$name.json"
		lab_capture "validate.cjs <$name.json" env NODE_PATH="$MODELS" node \
			"$SRC/tests/kubernetes/validate.cjs" "$LAB_DIR/$name.json"
		lab_check_eq "[$name] every object validates against the API schema" 0 "$LAB_RC"
	fi
}

VALIDATE=
if command -v node >/dev/null 2>&1 && [ -d "$MODELS/kubernetes-models" ]; then
	VALIDATE=1
	# the validator can fail: a boolean given as a string, a missing required field
	echo '[{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x"},"spec":{"selector":{},"template":{"spec":{"hostNetwork":"yes","containers":[{"name":"a"}]}}}},{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"y"},"spec":{"template":{"spec":{"containers":[{"name":"a"}]}}}}]' \
		>"$LAB_DIR/broken.json"
	lab_capture "validate.cjs <broken.json" env NODE_PATH="$MODELS" node \
		"$SRC/tests/kubernetes/validate.cjs" "$LAB_DIR/broken.json"
	lab_check_eq "the validator rejects broken DaemonSets" 1 "$LAB_RC"
	lab_check_eq "...both of them" 2 "$(grep -c '^FAIL' <<<"$LAB_OUT")"
else
	echo "SKIP  schema validation: needs node and kubernetes-models in $MODELS" \
		"(npm install --prefix $(dirname "$DOTGW")/k8s-models kubernetes-models@4)"
fi

check_rendering base "$SRC/kubernetes/base"
for o in "$SRC"/kubernetes/overlays/*/; do
	check_rendering "$(basename "$o")" "$o"
done
lab_check_match "[encrypt-only] gateway scope on the pod interfaces" \
	"scope = both.*interface = cali\\*" "$(tr '\n' ' ' <"$LAB_DIR/encrypt-only.conf")"
lab_check_match "[policy] a group of the pods with --egress" \
	"group = pods=@cali\\*.*egress = pods" "$(tr '\n' ' ' <"$LAB_DIR/policy.conf")"
lab_finish
