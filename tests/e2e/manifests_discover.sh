# ferry-build images: the discovery fixture set gives exactly the expected
# list; --json says where each reference was found and by which rule, and
# lists the ignored values; --explain REF says where and why (or why not);
# bad input is refused with the file and the place.
. "$(dirname "$0")/lib.sh"
FX=$TOP/tests/fixtures/discover

cd "$FX"
ferry-build images . >"$T/got.txt"
diff -u expected.txt "$T/got.txt" || fail "discovered list differs from tests/fixtures/discover/expected.txt"
echo "discovered $(wc -l <"$T/got.txt") references, exactly as expected"

# --certain drops the suggested ones and nothing else
ferry-build images --certain . >"$T/certain.txt"
grep -v '# suggested' expected.txt | diff -u - "$T/certain.txt" || fail "--certain list differs"

# a spec's manifests: entries are read the same way
cat >"$T/spec.yaml" <<SPEC
apiVersion: ferry/v1
kind: Bundle
metadata: {name: d}
manifests:
- path: $FX
SPEC
ferry-build images "$T/spec.yaml" | diff -u expected.txt - || fail "spec input differs"

# --json: places
ferry-build images --json . >"$T/got.json"
python3 - "$T/got.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
by = {i["ref"]: i for i in d["images"]}
def place(ref):
    f = by[ref]["found"][0]
    return (f["file"].split("/")[-1], f["document"], f["kind"], f["name"], f["path"])
want = {
    "docker.io/library/busybox:1.36": ("01-workloads.yaml", 1, "Pod", "debug-pod", "spec.initContainers[0].image"),
    "registry.example.com:5000/tools/debug:2.0": ("01-workloads.yaml", 1, "Pod", "debug-pod", "spec.ephemeralContainers[0].image"),
    "docker.io/example/report:2024.1": ("01-workloads.yaml", 8, "CronJob", "nightly", "spec.jobTemplate.spec.template.spec.containers[0].image"),
    "quay.io/example/sidecar:0.9": ("01-workloads.yaml", 2, "Deployment", "web", "spec.template.spec.containers[0].env[0].value"),
    "docker.io/kserve/custom-onnx:1.0": ("02-crds.yaml", 1, "InferenceService", "mnist", "spec.predictor.model.image"),
    "docker.io/library/python:3.12-slim": ("02-crds.yaml", 4, "Workflow", "pipeline-", "spec.templates[2].script.image"),
    "gcr.io/ml-pipeline/kfp-driver@sha256:" + "3" * 64: ("02-crds.yaml", 4, "Workflow", "pipeline-", "spec.templates[1].container.args[1]"),
    "docker.io/example/listed:1": ("03-config.yaml", 3, "Pod", "in-a-list", "items[0].spec.containers[0].image"),
    "gcr.io/ml-pipeline/kfp-launcher:2.3.0": ("03-config.yaml", 1, "ConfigMap", "pipeline-config", "data.launcherImage"),
}
for ref, w in want.items():
    assert place(ref) == w, (ref, place(ref), w)
assert by["quay.io/example/sidecar:0.9"]["suggested"] is True
assert by["docker.io/library/nginx:1.25.3"]["suggested"] is False
assert by["docker.io/library/nginx:1.25.3"]["found"][0]["value"] == "nginx:1.25.3"
kinds = {s["file"].split("/")[-1]: s["kinds"] for s in d["sources"]}
assert kinds["01-workloads.yaml"] == {k: 1 for k in ["CronJob", "DaemonSet", "Deployment", "Job", "Pod", "ReplicaSet", "ReplicationController", "StatefulSet"]}, kinds
assert kinds["03-config.yaml"] == {"ConfigMap": 1, "CustomResourceDefinition": 1, "Pod": 1, "Service": 1}, kinds
print("json places ok")
PY

# the generic rules in --json: each place names its rule; values that are
# not references are listed as ignored (not as invalid, and no warning)
python3 - "$T/got.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rules = {}
for i in d["images"]:
    for f in i["found"]:
        rules[(f["kind"], f["path"])] = (i["ref"], f["rule"], f["suggested"])
want = {
    ("Widget", "spec.image"): ("registry.example.com/widgets/worker:3.1", "field image", False),
    ("Widget", "spec.defaultImage"): ("docker.io/example/default-runner:1.0", "field *Image", False),
    ("Widget", "spec.container.image"): ("quay.io/example/init:2", "field image", False),
    ("Widget", "spec.container.args[0]"): ("gcr.io/example/helper:5", "string scan (suggested)", True),
    ("Widget", "spec.extraContainers[0].env[0].value"): ("quay.io/example/related:7", "string scan (suggested)", True),
    ("ModelCache", "spec.storageUri"): ("models.ferry.local/bert-modelcar:v2", "storageUri oci://", False),
    ("InferenceService", "spec.predictor.model.storageUri"): ("registry.local/models/mnist-modelcar:1", "storageUri oci://", False),
    ("InferenceService", "spec.predictor.model.image"): ("docker.io/kserve/custom-onnx:1.0", "known CRD InferenceService", False),
    ("Workflow", "spec.templates[1].container.image"): ("ghcr.io/example/trainer:1.2", "known CRD Workflow", False),
    ("Pod", "spec.containers[0].image"): ("docker.io/library/nginx:1.25.3", "containers list", False),
}
for k, w in want.items():
    assert rules.get(k) == w, (k, rules.get(k), w)
ign = {(x["kind"], x["path"]): x["value"] for x in d["ignored"]}
assert ign == {("Gadget", "spec.image"): "IfNotPresent", ("Gadget", "spec.runnerImage"): "{{.Image}}",
               ("Gadget", "spec.previewImage"): "true", ("Gadget", "spec.cacheImage"): "null",
               ("Gadget", "spec.baseImage"): "none", ("Gadget", "spec.buildImage"): "12"}, ign
assert d["invalid"] == [], d["invalid"]
assert not any("imagePullPolicy" in p for (_, p) in rules), "imagePullPolicy taken as an image"
print("rules ok; ignored:", sorted(ign.values()))
PY
ferry-build images . 2>"$T/warn.txt" >/dev/null
[ ! -s "$T/warn.txt" ] || fail "ignored values warned: $(cat "$T/warn.txt")"

# --explain REF: where, and by which rule; or why it was ignored; exit 1
# when nothing matches
explain() { ferry-build images --explain "$1" . >"$T/explain.txt" || fail "--explain $1 failed: $(cat "$T/explain.txt")"; }
explain registry.example.com/widgets/worker:3.1
grep -q '^found (certain):' "$T/explain.txt" || fail "explain: $(cat "$T/explain.txt")"
grep -q '04-generic.yaml, document 1, Widget w1, spec.image (line 11, column 10)' "$T/explain.txt" ||
	fail "explain place: $(cat "$T/explain.txt")"
grep -q 'rule: field image; value "registry.example.com/widgets/worker:3.1"' "$T/explain.txt" ||
	fail "explain rule: $(cat "$T/explain.txt")"
explain example/default-runner:1.0
grep -q 'Widget w1, spec.defaultImage .*' "$T/explain.txt" && grep -q 'rule: field \*Image' "$T/explain.txt" ||
	fail "explain *Image: $(cat "$T/explain.txt")"
explain models.ferry.local/bert-modelcar:v2
grep -q 'rule: storageUri oci://; value "oci://models.ferry.local/bert-modelcar:v2"' "$T/explain.txt" ||
	fail "explain storageUri: $(cat "$T/explain.txt")"
explain openvino/model_server:2024.1
grep -q 'ServingRuntime ovms, spec.containers\[0\].image' "$T/explain.txt" && grep -q 'rule: containers list' "$T/explain.txt" ||
	fail "explain containers list: $(cat "$T/explain.txt")"
explain gcr.io/example/helper:5
grep -q '^found (suggested: inside a string):' "$T/explain.txt" && grep -q 'spec.container.args\[0\]' "$T/explain.txt" &&
	grep -q 'rule: string scan (suggested)' "$T/explain.txt" || fail "explain args: $(cat "$T/explain.txt")"
explain IfNotPresent
grep -q '^ignored (not taken as an image):' "$T/explain.txt" &&
	grep -q 'Gadget not-images, spec.image (line 30, column 10)' "$T/explain.txt" &&
	grep -q 'ignored by rule field image: value "IfNotPresent": .*lowercase' "$T/explain.txt" ||
	fail "explain ignored: $(cat "$T/explain.txt")"
explain '{{.Image}}'
grep -q 'ignored by rule field \*Image: value "{{.Image}}": a template' "$T/explain.txt" ||
	fail "explain template: $(cat "$T/explain.txt")"
cat "$T/explain.txt"
# seen nowhere: exit 1; text that no rule reads is pointed at
expect_fail 1 'not seen' ferry-build images --explain quay.io/nothing/here:1 .
expect_fail 1 '04-generic.yaml:78:17: defaultImage: example/in-a-secret:1' ferry-build images --explain example/in-a-secret:1 .
expect_fail 1 'not seen' ferry-build images --explain Always .

# bad input: each names the file and the place
cd "$T"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\ndata:\n  a: b\n' >notyaml.yaml
expect_fail 1 'notyaml.yaml:[0-9]+:[0-9]+: YAML syntax error' ferry-build images notyaml.yaml
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: nokind}\n' >nokind.yaml
expect_fail 1 "nokind.yaml:5:1: document 2 has no 'kind'" ferry-build images nokind.yaml
python3 -c '
import sys
with open("big.yaml", "w") as f:
    f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: ")
    f.write("x" * (50 * 1024 * 1024))
    f.write("\n")'
expect_fail 1 'big.yaml:5:9: document 1: a value of 52428800 bytes is over the 2 MiB cap' ferry-build images big.yaml
printf 'just a string\n' >scalar.yaml
expect_fail 1 'scalar.yaml:1:1: document 1 is not a Kubernetes object' ferry-build images scalar.yaml
exit 0
