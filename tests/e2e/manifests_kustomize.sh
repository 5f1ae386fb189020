# kustomize: entries are rendered at build time (kustomize build or kubectl
# kustomize); an overlay's images: transformer is what gets discovered,
# bundled and pinned. Without either program the error says so.
. "$(dirname "$0")/lib.sh"
cd "$T"
mkdir -p base overlay
cat >base/kustomization.yaml <<'Y'
resources: [deploy.yaml]
Y
cat >base/deploy.yaml <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: web
        image: nginx
Y
# 'bases:' (deprecated in kustomize v5, still read) so that the kustomize
# v2.0 inside Debian bookworm's kubectl 1.20 renders it too
cat >overlay/kustomization.yaml <<'Y'
bases: [../base]
namePrefix: prod-
images:
- name: nginx
  newName: registry.example.com/mirror/nginx
  newTag: "1.25"
Y
ferry-build keygen -o k >/dev/null
cat >spec.yaml <<'Y'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: kz}
images:
- ref: registry.example.com/mirror/nginx:1.25
  from: oci-layout:oci:web
manifests:
- kustomize: overlay
Y
echo data >f
make_image oci web f

# neither program: a clear refusal, no bundle
FERRY_KUSTOMIZE=none expect_fail 1 "needs 'kustomize' or 'kubectl' on PATH, and neither was found" \
	ferry-build build spec.yaml -o none.tar --key k.key
[ ! -e none.tar ] || fail "a bundle was written"
# a folder holding a kustomization given as path: is refused
cat >bad.yaml <<'Y'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: kz}
manifests:
- path: overlay
Y
expect_fail 1 "bad.yaml:5: manifests entry: .*overlay holds a kustomization: list it as 'kustomize: " \
	ferry-build build bad.yaml -o bad.tar --key k.key

tool=
command -v kustomize >/dev/null 2>&1 && tool=kustomize
[ -z "$tool" ] && command -v kubectl >/dev/null 2>&1 && tool=kubectl
[ -n "$tool" ] || skip "neither kustomize nor kubectl is installed (Debian: apt-get install kubernetes-client); rendering not tested"

[ "$(ferry-build images overlay)" = "registry.example.com/mirror/nginx:1.25" ] ||
	fail "discovery over the overlay: $(ferry-build images overlay)"
ferry-build build spec.yaml -o b.tar --key k.key 2>build.log || { cat build.log; fail "build failed"; }
cat build.log
mkdir x && tar xf b.tar -C x
ls x/manifests
f=x/manifests/01-overlay.yaml
[ -f "$f" ] || fail "manifests/01-overlay.yaml missing"
grep -q 'name: prod-web' "$f" || fail "not rendered: $(cat "$f")"
d=$(python3 -c 'import json,sys; print([i["digest"] for i in json.load(open(sys.argv[1]))["images"]][0])' x/bundle.json)
grep -q "image: registry.example.com/mirror/nginx@$d" "$f" || fail "not pinned: $(cat "$f")"
python3 - x/bundle.json <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["manifests"][0]
assert m["rendered"] is True and m["kinds"] == {"Deployment": 1} and m["pinned"] == 1, m
PY
echo "rendered with $tool, discovered and pinned"
exit 0
