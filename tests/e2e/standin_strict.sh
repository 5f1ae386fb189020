#!/bin/bash
# The kubectl/oc stand-in (tests/fixtures/kubectl-standin) is strict, so that
# the install tests mean what they say: an unknown verb or flag fails with
# kubectl's message; every argv shape ferry uses is accepted; -o jsonpath= is
# evaluated on stored objects; patch changes what get returns; CRDs are keyed
# by group and kind; Established can lag or never come; server-side-apply
# conflicts can be injected. No network: only the stand-in runs.
. "$(dirname "$0")/lib.sh"
# the stand-in runs on the system python3 with Debian's PyYAML (scripts/deps)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || fail "/usr/bin/python3 cannot import yaml: run scripts/deps (python3-yaml)"
mkdir -p "$T/bin"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/kubectl"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/oc"
export PATH="$T/bin:$PATH"
newlog() {
	export KUBECTL_STANDIN_LOG=$T/$1.log
	rm -rf "$KUBECTL_STANDIN_LOG"*
}
SSA="apply --server-side --force-conflicts --field-manager=ferry -f -"
# out CMD...: the command's stdout; it must succeed
out() { "$@" </dev/null || fail "failed: $*"; }

# --- unknown verbs and flags fail as kubectl's do
newlog strict
expect_fail 1 'unknown command "delete" for "kubectl"' kubectl delete pod x
expect_fail 1 'unknown command "version" for "oc"' oc version
expect_fail 1 'unknown flag: --dry-run' kubectl --context=kind-demo apply --server-side --dry-run=server -f -
expect_fail 1 "unknown shorthand flag: 'w' in -w" kubectl get nodes -w
# a flag of another verb is unknown here
expect_fail 1 'unknown flag: --server-side' kubectl get nodes --server-side -o name
expect_fail 1 'unknown flag: --type' kubectl apply --type=json -f -
expect_fail 1 'flag needs an argument: --context' kubectl get nodes -o name --context
expect_fail 1 "flag needs an argument: 'o' in -o" kubectl get nodes -o
expect_fail 1 'force-conflicts only works with --server-side' kubectl apply --force-conflicts -f -
expect_fail 1 'must specify one of -f and -k' kubectl apply --server-side
expect_fail 1 'Unexpected args: \[extra\]' kubectl apply --server-side -f - extra
expect_fail 1 'invalid argument "soon" for "--timeout" flag' kubectl wait --for condition=Established --timeout=soon crd/x
expect_fail 1 'unable to match a printer suitable for the output format "toml"' kubectl get nodes -o toml
expect_fail 1 "the server doesn't have a resource type \"gadgets\"" kubectl get gadgets -o name
expect_fail 1 'stat /nonexistent/kubeconfig: no such file' kubectl --kubeconfig=/nonexistent/kubeconfig get nodes -o name
# what kubectl would accept but the stand-in cannot answer faithfully is refused, never faked
expect_fail 1 'not modelled: get without -o' kubectl get nodes
expect_fail 1 'not modelled: --type=strategic' kubectl patch serviceaccount default -p '{}'
expect_fail 1 'not modelled: jsonpath \[\?' kubectl get nodes -o 'jsonpath={.items[?(@.kind=="Node")].metadata.name}'
# every refusal is in the log, and nothing was stored by them
[ "$(grep -c '^CALL' "$KUBECTL_STANDIN_LOG")" -eq 18 ] || fail "not every call was logged"
grep -q '^APPLIED' "$KUBECTL_STANDIN_LOG" && fail "a refused call applied something"

# --- the shapes ferry uses are accepted: global flags before or after the
#     verb, --flag=V and --flag V, -n V and --namespace=V
touch "$T/kubeconfig"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n' |
	kubectl --kubeconfig="$T/kubeconfig" --context=kind-demo $SSA >"$T/o" || fail "ferry's apply shape refused"
grep -qx 'namespace/team-a serverside-applied' "$T/o" || fail "apply output: $(cat "$T/o")"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {k: v}\n' |
	kubectl --context kind-demo $SSA --namespace=team-a >/dev/null || fail "--namespace=NS refused"
[ "$(out kubectl get configmap c -n team-a -o 'jsonpath={.data.k}' --context=kind-demo)" = v ] || fail "-n NS"
[ "$(out kubectl --namespace team-a get cm/c -o=jsonpath='{.metadata.namespace}')" = team-a ] || fail "--namespace NS"
# -n X with an object in namespace Y is refused; a missing namespace is NotFound
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: team-b\n' >"$T/cm-b.yaml"
expect_fail 1 'namespace from the provided object "team-b" does not match the namespace "team-a"' \
	kubectl $SSA -n team-a <"$T/cm-b.yaml"
expect_fail 1 'namespaces "team-b" not found' kubectl $SSA <"$T/cm-b.yaml"
# built-in kinds need their own group/version
printf 'apiVersion: v1\nkind: Deployment\nmetadata:\n  name: d\n' >"$T/bad-dep.yaml"
expect_fail 1 'no matches for kind "Deployment" in version "v1"' kubectl $SSA <"$T/bad-dep.yaml"

# --- jsonpath is evaluated: ferry's four expressions on stored objects
NODES='{range .items[*]}{.metadata.name} {.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}'
KUBECTL_STANDIN_NODES="cp containerd://1.7.1,w1 docker://24.0.7" kubectl get nodes -o "jsonpath=$NODES" >"$T/nodes" </dev/null
printf 'cp containerd://1.7.1\nw1 docker://24.0.7\n' | cmp -s - "$T/nodes" || fail "get nodes jsonpath: $(cat "$T/nodes")"
[ "$(out kubectl get serviceaccount default -n team-a -o 'jsonpath={.imagePullSecrets[*].name}')" = "" ] ||
	fail "a fresh ServiceAccount lists pull secrets"
[ "$(out kubectl get serviceaccount default -n team-a -o 'jsonpath={.metadata.name}/{.metadata.namespace}')" = default/team-a ] ||
	fail "jsonpath text between actions"
# --- get --ignore-not-found -o json (what ferry reads objects with): a
# missing object prints nothing and exits 0, as kubectl does; without the
# flag it is kubectl's NotFound error; a present one is its JSON
[ -z "$(out kubectl get serviceaccount nobody -n team-a --ignore-not-found -o json)" ] ||
	fail "--ignore-not-found printed something for a missing object"
expect_fail 1 'Error from server \(NotFound\): serviceaccounts "nobody" not found' \
	kubectl get serviceaccount nobody -n team-a -o json
out kubectl get serviceaccount default -n team-a --ignore-not-found -o json |
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["metadata"]["name"] == "default"' ||
	fail "--ignore-not-found -o json of a present object"
KUBECTL_STANDIN_NODES="cp containerd://1.7.1,w1 docker://24.0.7" out kubectl get nodes -o json |
	python3 -c 'import json,sys; d=json.load(sys.stdin); assert [(n["metadata"]["name"], n["status"]["nodeInfo"]["containerRuntimeVersion"]) for n in d["items"]] == [("cp", "containerd://1.7.1"), ("w1", "docker://24.0.7")]' ||
	fail "get nodes -o json"
newlog okd
KUBECTL_STANDIN_PULL_SECRET='{"auths":{"quay.io":{"auth":"cXVheTpwdw=="}}}' \
	oc get secret pull-secret -n openshift-config -o 'jsonpath={.data.\.dockerconfigjson}' >"$T/ps" </dev/null ||
	fail "openshift: no pull-secret"
[ "$(base64 -d <"$T/ps")" = '{"auths":{"quay.io":{"auth":"cXVheTpwdw=="}}}' ] || fail "escaped-dot key: $(cat "$T/ps")"
[ "$(out oc get image.config.openshift.io/cluster -o 'jsonpath={.spec.additionalTrustedCA.name}')" = "" ] ||
	fail "a fresh image.config trusts a ConfigMap"
expect_fail 1 'NotFound\): secrets "pull-secret" not found' oc get secret pull-secret -n kube-system -o name
# a plain Kubernetes cluster has no image.config (kubectl, not oc)
newlog kube
expect_fail 1 "the server doesn't have a resource type \"image\"" \
	kubectl get image.config.openshift.io/cluster -o 'jsonpath={.spec}'

# --- patch then get: the change is stored
newlog patch
J='[{"op":"add","path":"/imagePullSecrets","value":[{"name":"a"}]}]'
[ "$(out kubectl patch serviceaccount default -n default --type=json -p "$J")" = "serviceaccount/default patched" ] ||
	fail "patch output"
out kubectl patch serviceaccount default -n default --type=json \
	-p '[{"op":"add","path":"/imagePullSecrets/-","value":{"name":"b"}}]' >/dev/null
[ "$(out kubectl get serviceaccount default -n default -o 'jsonpath={.imagePullSecrets[*].name}')" = "a b" ] ||
	fail "json patch not stored"
[ "$(out kubectl get sa default -o 'jsonpath={.imagePullSecrets[1].name}')" = b ] || fail "jsonpath [N]"
expect_fail 1 'jsonpatch add operation does not apply: doc is missing path: "/secrets/-"' \
	kubectl patch serviceaccount default -n default --type=json -p '[{"op":"add","path":"/secrets/-","value":{"name":"x"}}]'
expect_fail 1 'NotFound\): serviceaccounts "default" not found' \
	kubectl patch serviceaccount default -n nowhere --type=json -p "$J"
# the cluster's kind is fixed when its state is made: this one is Kubernetes, even for oc
expect_fail 1 "the server doesn't have a resource type \"image\"" \
	oc patch image.config.openshift.io/cluster --type=merge -p '{"spec":{"additionalTrustedCA":{"name":"x"}}}'
newlog patch-okd
out oc patch image.config.openshift.io/cluster --type=merge -p '{"spec":{"additionalTrustedCA":{"name":"ferry-ca"}}}' >/dev/null
[ "$(out oc get image.config.openshift.io/cluster -o 'jsonpath={.spec.additionalTrustedCA.name}')" = ferry-ca ] ||
	fail "merge patch not stored"
[ "$(out oc patch image.config.openshift.io/cluster --type=merge -p '{"spec":{"additionalTrustedCA":{"name":"ferry-ca"}}}')" = \
	"image.config.openshift.io/cluster patched (no change)" ] || fail "a no-op patch"

# --- CRDs keyed by group and kind; a custom resource needs its CRD
newlog crd
crd() { # GROUP [NAME]
	printf 'apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: %s\nspec:\n  group: %s\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: [{name: v1, served: true, storage: true}]\n' \
		"${2:-widgets.$1}" "$1"
}
cr() { printf 'apiVersion: %s\nkind: Widget\nmetadata:\n  name: %s\nspec: {size: %s}\n' "$1" "$2" "$3"; }
crd demo.ferry.dev >"$T/crd1.yaml"
crd other.ferry.dev >"$T/crd2.yaml"
crd demo.ferry.dev gadgets.demo.ferry.dev >"$T/crd-badname.yaml"
cr demo.ferry.dev/v1 w 3 >"$T/cr1.yaml"
cr other.ferry.dev/v1 w 7 >"$T/cr2.yaml"
cr demo.ferry.dev/v2 w 9 >"$T/cr1v2.yaml"
expect_fail 1 'no matches for kind "Widget" in version "demo.ferry.dev/v1"' kubectl $SSA <"$T/cr1.yaml"
expect_fail 1 'metadata.name: Invalid value: "gadgets.demo.ferry.dev": must be spec.names.plural' \
	kubectl $SSA <"$T/crd-badname.yaml"
kubectl $SSA <"$T/crd1.yaml" >/dev/null || fail "CRD apply"
kubectl $SSA <"$T/cr1.yaml" >/dev/null || fail "CR apply with its CRD"
# the same kind in another group is another type: it needs its own CRD
expect_fail 1 'no matches for kind "Widget" in version "other.ferry.dev/v1"' kubectl $SSA <"$T/cr2.yaml"
expect_fail 1 'no matches for kind "Widget" in version "demo.ferry.dev/v2"' kubectl $SSA <"$T/cr1v2.yaml"
kubectl $SSA <"$T/crd2.yaml" >/dev/null || fail "second CRD apply"
kubectl $SSA <"$T/cr2.yaml" >/dev/null || fail "CR apply with the second CRD"
[ "$(out kubectl get widgets.demo.ferry.dev w -o 'jsonpath={.spec.size}')" = 3 ] || fail "demo.ferry.dev Widget"
[ "$(out kubectl get widgets.other.ferry.dev/w -o 'jsonpath={.spec.size}')" = 7 ] || fail "other.ferry.dev Widget"
[ "$(grep -c '^APPLIED .* Widget/w ns=default' "$KUBECTL_STANDIN_LOG")" -eq 2 ] || fail "two Widgets not applied"

# --- Established lags, and can never come
newlog lag
export KUBECTL_STANDIN_ESTABLISHED_AFTER=1.5
kubectl $SSA <"$T/crd1.yaml" >/dev/null
expect_fail 1 'no matches for kind "Widget"' kubectl $SSA <"$T/cr1.yaml"
[ "$(out kubectl get crd widgets.demo.ferry.dev -o 'jsonpath={.status.conditions[1].type}={.status.conditions[1].status}')" = \
	Established=False ] || fail "a lagging CRD is Established"
expect_fail 1 'timed out waiting for the condition on customresourcedefinitions/widgets.demo.ferry.dev' \
	kubectl wait --for condition=Established --timeout=100ms crd/widgets.demo.ferry.dev
t0=$(date +%s.%N)
out kubectl --context=kind-demo wait --for condition=Established --timeout=10s crd/widgets.demo.ferry.dev >"$T/w"
t1=$(date +%s.%N)
grep -qx 'customresourcedefinition.apiextensions.k8s.io/widgets.demo.ferry.dev condition met' "$T/w" ||
	fail "wait output: $(cat "$T/w")"
echo "$t0 $t1" | awk '{ exit !($2 - $1 >= 0.5) }' || fail "wait returned at once although Established lags"
kubectl $SSA <"$T/cr1.yaml" >/dev/null || fail "CR apply once Established"
newlog never
export KUBECTL_STANDIN_ESTABLISHED_AFTER=never
kubectl $SSA <"$T/crd1.yaml" >/dev/null
t0=$(date +%s)
expect_fail 1 '^error: timed out waiting for the condition on customresourcedefinitions/widgets.demo.ferry.dev' \
	kubectl wait --for condition=Established --timeout=1s crd/widgets.demo.ferry.dev
[ $(($(date +%s) - t0)) -ge 1 ] || fail "wait gave up before its timeout"
expect_fail 1 'no matches for kind "Widget"' kubectl $SSA <"$T/cr1.yaml"
expect_fail 1 'NotFound\): customresourcedefinitions.apiextensions.k8s.io "nope.demo.ferry.dev" not found' \
	kubectl wait --for condition=Established --timeout=1s crd/nope.demo.ferry.dev
unset KUBECTL_STANDIN_ESTABLISHED_AFTER

# --- server-side-apply conflicts can be injected; --force-conflicts takes the fields
newlog conflict
export KUBECTL_STANDIN_CONFLICT=ConfigMap/c
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: {k: mine}\n' >"$T/c.yaml"
expect_fail 1 'Apply failed with 1 conflict: conflict with "standin-other-manager" using v1: .data.k' \
	kubectl apply --server-side --field-manager=ferry -f - <"$T/c.yaml"
expect_fail 1 're-run the apply' kubectl apply --server-side -f - <"$T/c.yaml"
grep -q '^APPLIED' "$KUBECTL_STANDIN_LOG" && fail "a conflicting apply was stored"
kubectl $SSA <"$T/c.yaml" >/dev/null || fail "--force-conflicts did not take the fields"
[ "$(out kubectl get cm c -o 'jsonpath={.data.k}')" = mine ] || fail "the forced apply was not stored"
# client-side apply has no field managers, so no conflict
kubectl apply -f - <"$T/c.yaml" >/dev/null || fail "client-side apply conflicted"
unset KUBECTL_STANDIN_CONFLICT
echo "ok: standin_strict"
