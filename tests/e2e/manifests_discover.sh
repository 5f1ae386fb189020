# ferry-build images: the discovery fixture set gives exactly the expected
# list; --json says where each reference was found; bad input is refused
# with the file and the place.
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
