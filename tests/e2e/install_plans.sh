#!/bin/bash
# kind and minikube plans with the recording kubectl stand-in: namespaces
# first, CRDs before CRs with a wait for Established (which may lag, or
# never come), --server-side with --force-conflicts everywhere, --namespace,
# retries, clear errors naming the step and the object; --dry-run prints the docker exec / minikube ssh commands and
# changes nothing. The kind plan runs for real through the local node
# runner into a real containerd (only the transport differs from a
# cluster). In a network namespace with only loopback.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need containerd ctr umoci python3
assert_airgap
make_bundle
start_containerd "$T/ctd"

# the stand-in answers as kubectl and as oc
mkdir -p "$T/bin"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/kubectl"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/oc"
export PATH="$T/bin:$PATH"
newlog() {
	export KUBECTL_STANDIN_LOG=$T/kubectl.$1.log
	rm -rf "$KUBECTL_STANDIN_LOG"*
}
# line number of the first log line matching a pattern
at() { grep -nE "$1" "$KUBECTL_STANDIN_LOG" | head -n 1 | cut -d: -f1; }

# --- kind plan, for real: images through the local runner into containerd,
#     manifests through the stand-in
newlog kind
export CONTAINERD_ADDRESS=$CTD_SOCK
ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local \
	--nodes demo-control-plane --snapshotter native --backoff 0.05 | tee "$T/out"
cat "$KUBECTL_STANDIN_LOG"
grep -q "ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=native -" "$T/out" ||
	fail "kind plan: no ctr import"
for ref in $IMAGES; do
	$CTR images ls -q | grep -qx "$ref" || fail "kind plan: $ref not in containerd"
done
# every call carries the kind context; every apply is server-side with force-conflicts
grep '^CALL' "$KUBECTL_STANDIN_LOG" | grep -v -- "--context=kind-demo" && fail "a call without --context=kind-demo"
grep '^CALL [0-9]* .*apply' "$KUBECTL_STANDIN_LOG" | grep -v -- "--server-side --force-conflicts --field-manager=ferry" &&
	fail "an apply without --server-side --force-conflicts"
grep '^APPLIED' "$KUBECTL_STANDIN_LOG" | grep -q 'server-side=0' && fail "an object applied client-side"
# order: namespaces first, CRD, wait Established, then the custom resource last
first=$(grep '^APPLIED' "$KUBECTL_STANDIN_LOG" | head -n 1)
echo "$first" | grep -q ' Namespace/ferry-demo ' || fail "the first object applied is not the namespace: $first"
crd=$(at 'APPLIED .* CustomResourceDefinition/widgets.demo.ferry.dev')
wait=$(at 'CALL .* wait --for condition=Established .*crd/widgets.demo.ferry.dev')
cr=$(at 'APPLIED .* Widget/w1')
cm=$(at 'APPLIED .* ConfigMap/app-config')
dep=$(at 'APPLIED .* Deployment/app')
[ -n "$crd" ] && [ -n "$wait" ] && [ -n "$cr" ] && [ -n "$cm" ] && [ -n "$dep" ] || fail "objects missing from the log"
[ "$crd" -lt "$wait" ] && [ "$wait" -lt "$cr" ] || fail "order: CRD ($crd) < wait ($wait) < CR ($cr) violated"
[ "$cm" -lt "$dep" ] && [ "$dep" -lt "$cr" ] || fail "order: config < workloads < custom resources violated"
grep -qE "manifests +applied 5" "$T/out" || fail "kind plan: 5 objects not applied"
# second run: images skipped as present
ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local \
	--nodes demo-control-plane --snapshotter native >"$T/out2" 2>&1 || { cat "$T/out2"; fail "second kind run"; }
grep -qE "images +done 0, skipped $N_IMAGES" "$T/out2" || fail "second kind run imported again"
unset CONTAINERD_ADDRESS

# --- --namespace: open objects go there, explicit ones stay; the namespace is created
newlog ns
ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" --snapshotter native \
	--apply --namespace team-a --backoff 0.05 >"$T/out" || { cat "$T/out"; fail "--namespace run"; }
cat "$KUBECTL_STANDIN_LOG"
grep -q 'APPLIED .* Namespace/team-a ' "$KUBECTL_STANDIN_LOG" || fail "--namespace: team-a not created"
[ "$(at 'Namespace/team-a')" -lt "$(at 'Deployment/app')" ] || fail "--namespace: namespace after workload"
grep -q 'APPLIED .* Deployment/app ns=team-a' "$KUBECTL_STANDIN_LOG" || fail "--namespace: deployment not in team-a"
grep -q 'APPLIED .* Widget/w1 ns=team-a' "$KUBECTL_STANDIN_LOG" || fail "--namespace: CR not in team-a"
grep -q 'APPLIED .* ConfigMap/app-config ns=ferry-demo' "$KUBECTL_STANDIN_LOG" || fail "--namespace moved an explicit namespace"

# --- discovery lag: "no matches for kind" twice, then it passes
newlog lag
KUBECTL_STANDIN_NOMATCH=2 ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" \
	--snapshotter native --apply --backoff 0.05 >"$T/out" || { cat "$T/out"; fail "retries did not recover"; }
grep "retry" "$T/out"
[ "$(grep -c 'transient error, retry' "$T/out")" -eq 2 ] || fail "expected 2 retries"
grep -q 'APPLIED .* Widget/w1' "$KUBECTL_STANDIN_LOG" || fail "the CR was never applied"

# --- retries exhausted: the error names the step and the object
newlog lag2
KUBECTL_STANDIN_NOMATCH=100 expect_fail 1 \
	'step 3/5 apply manifests: phase 6/6 custom resources: Widget/w1 .*manifests/[0-9]*-?10-app.yaml, document 3.* failed after 3 attempts: .*no matches for kind "Widget"' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" \
	--snapshotter native --apply --retries 2 --backoff 0.05

# --- a failing apply (not transient): no retries, the object is named
newlog fail
KUBECTL_STANDIN_FAIL=Deployment/app expect_fail 1 \
	'step 3/5 apply manifests: phase 4/6 workloads: Deployment/app .* failed after 1 attempt: Error from server \(BadRequest\)' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" \
	--snapshotter native --apply --backoff 0.05
grep -q 'Widget/w1' "$KUBECTL_STANDIN_LOG" && fail "custom resources applied after a failed phase"

# --- Established lags (1 s): ferry's wait blocks until it comes, so the CR
#     goes in on its first try
newlog established
KUBECTL_STANDIN_ESTABLISHED_AFTER=1 ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" \
	--snapshotter native --apply --backoff 0.05 >"$T/out" || { cat "$T/out"; fail "a lagging Established failed the run"; }
grep -q 'APPLIED .* Widget/w1' "$KUBECTL_STANDIN_LOG" || fail "lagging Established: the CR was never applied"
grep -q 'transient error, retry' "$T/out" && fail "lagging Established: the CR was applied before its CRD was Established"

# --- Established never comes: the wait times out with kubectl's error, and no CR is applied
newlog never
KUBECTL_STANDIN_ESTABLISHED_AFTER=never expect_fail 1 \
	'CRDs: waiting for condition Established \(timeout 1s\): error: timed out waiting for the condition on customresourcedefinitions/widgets.demo.ferry.dev' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target containerd:"$CTD_SOCK" \
	--snapshotter native --apply --wait-timeout 1 --backoff 0.05
grep -q 'Widget/w1' "$KUBECTL_STANDIN_LOG" && fail "a CR was applied although its CRD never became Established"

# --- fields owned by another manager: ferry's server-side applies force them
newlog conflict
KUBECTL_STANDIN_CONFLICT=ConfigMap/app-config,Deployment/app ferry-install install "$BUNDLE" --pubkey "$PUB" \
	--target containerd:"$CTD_SOCK" --snapshotter native --apply --backoff 0.05 >"$T/out" ||
	{ cat "$T/out"; fail "an injected field conflict failed ferry's apply (no --force-conflicts?)"; }
grep -q 'APPLIED .* Deployment/app ' "$KUBECTL_STANDIN_LOG" || fail "conflict: the Deployment was not applied"

# --- kubectl missing: the step is named, and nothing is delivered first
$CTR images rm $($CTR images ls -q) >/dev/null
expect_fail 1 'step 3/5 apply manifests: kubectl-missing not found' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local \
	--nodes demo-control-plane --snapshotter native --kubectl kubectl-missing
[ "$($CTR images ls -q | wc -l)" -eq 0 ] || fail "images were delivered although kubectl is missing"

# --- an unreachable kind node: the step and the node are named
expect_fail 1 'step 2/5 deliver images: node demo-gone \(docker exec\)' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --nodes demo-gone --snapshotter overlayfs

# --- dry-run, kind: two nodes (from the API), docker exec ... ctr ... import on each
newlog drykind
KUBECTL_STANDIN_NODES="demo-control-plane containerd://1.7.1,demo-worker containerd://1.7.1" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --dry-run --jobs 1 >"$T/dry" 2>&1 ||
	{ cat "$T/dry"; fail "kind dry-run failed"; }
cat "$T/dry"
for n in demo-control-plane demo-worker; do
	grep -q "^DRY-RUN: docker exec -i $n ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs - < (archive of $N_CIMAGES images" "$T/dry" ||
		fail "kind dry-run: no docker exec import for $n"
done
grep -q "^DRY-RUN: kubectl --context=kind-demo apply --server-side --force-conflicts --field-manager=ferry -f -" "$T/dry" ||
	fail "kind dry-run: no apply printed"
grep -q "^DRY-RUN: kubectl --context=kind-demo wait --for condition=Established --timeout=120s crd/widgets.demo.ferry.dev" "$T/dry" ||
	fail "kind dry-run: no wait printed"
grep -q '^APPLIED' "$KUBECTL_STANDIN_LOG" && fail "dry-run applied something"
grep '^CALL' "$KUBECTL_STANDIN_LOG" | grep -vq ' get nodes ' && fail "dry-run made a call other than a read-only query"

# --- dry-run, minikube: containerd runtime on two nodes, then the docker runtime
newlog drymk
KUBECTL_STANDIN_NODES="mk containerd://1.7.1,mk-m02 containerd://1.7.1" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target minikube:mk --dry-run --jobs 1 >"$T/dry" 2>&1 ||
	{ cat "$T/dry"; fail "minikube dry-run failed"; }
cat "$T/dry"
grep -q "^DRY-RUN: minikube ssh -p mk -- 'sudo -n ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -' < (archive of $N_CIMAGES images" "$T/dry" ||
	fail "minikube dry-run: no minikube ssh import on mk"
grep -q "^DRY-RUN: minikube ssh -p mk -n mk-m02 -- 'sudo -n ctr --namespace=k8s.io images import" "$T/dry" ||
	fail "minikube dry-run: no import on mk-m02"
grep -q "^DRY-RUN: kubectl --context=mk apply --server-side" "$T/dry" || fail "minikube dry-run: apply"
KUBECTL_STANDIN_NODES="mk docker://24.0.7" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target minikube:mk --dry-run --jobs 1 >"$T/dry" 2>&1 ||
	{ cat "$T/dry"; fail "minikube docker dry-run failed"; }
grep -q "^DRY-RUN: minikube ssh -p mk -- 'sudo -n docker load' < (archive of $N_CIMAGES images" "$T/dry" ||
	fail "minikube docker dry-run: no docker load"
grep -q '^APPLIED' "$KUBECTL_STANDIN_LOG" && fail "dry-run applied something"
# --- dry-run, kind, mirror mode: the registry it would start, the hosts.toml it would write
KUBECTL_STANDIN_NODES="demo-control-plane containerd://1.7.1,demo-worker containerd://1.7.1" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --mode mirror --no-apply \
	--advertise 172.18.0.1 --serve-dir "$T/sd" --dry-run >"$T/dry" 2>&1 || { cat "$T/dry"; fail "kind mirror dry-run"; }
cat "$T/dry"
grep -q "^DRY-RUN: .*ferry-install serve $BUNDLE --listen 0.0.0.0:5000 --tls-self-signed $T/sd/tls --hostname 172.18.0.1 " "$T/dry" ||
	fail "kind mirror dry-run: no serve command"
for n in demo-control-plane demo-worker; do
	grep -q "^DRY-RUN: docker exec -i $n tee /etc/containerd/certs.d/docker.io/hosts.toml < (file content)" "$T/dry" ||
		fail "kind mirror dry-run: no hosts.toml for $n"
done
[ ! -e "$T/sd" ] || fail "dry-run created the serve folder"
echo "ok: plans"
