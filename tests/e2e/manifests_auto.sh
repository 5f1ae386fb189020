# images: auto / --auto-images / --include-suggested: the images the
# manifests use are pulled (here from `ferry-install serve` on loopback,
# standing in for the upstream registry) and pinned.
. "$(dirname "$0")/lib.sh"
cd "$T"
ferry-build keygen -o k >/dev/null
echo one >f1; echo two >f2
make_image oci app f1
make_image oci side f2
# upstream: a bundle holding both images, served as a registry
cat >up.yaml <<'Y'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: upstream}
images:
- {ref: "registry.example.com/team/app:1.0", from: "oci-layout:oci:app"}
- {ref: "registry.example.com/team/side:2.0", from: "oci-layout:oci:side"}
Y
ferry-build build up.yaml -o up.tar --key k.key --quiet
P=$(free_port)
ferry-install serve up.tar --pubkey k.pub --listen "127.0.0.1:$P" >serve.log 2>&1 &
SP=$!
FERRY_PIDS="$FERRY_PIDS $SP"
up=0
for _ in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.1/"$P") 2>/dev/null && { up=1; break; }
	kill -0 "$SP" 2>/dev/null || fail "ferry-install serve exited: $(tail -n 2 serve.log | tr '\n' ' ')"
	sleep 0.1
done
[ $up = 1 ] || fail "ferry-install serve did not listen on 127.0.0.1:$P in 10 s"

mkdir m
cat >m/app.yaml <<'Y'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.example.com/team/app:1.0
        env:
        - {name: SIDE, value: "registry.example.com/team/side:2.0"}
Y
spec() { # spec NAME IMAGES-LINE
	cat >"$1.yaml" <<Y
apiVersion: ferry/v1
kind: Bundle
metadata: {name: $1}
registries:
  registry.example.com:
    endpoint: 127.0.0.1:$P/registry.example.com
    insecure: true
$2
manifests:
- path: m
Y
}
refs() { tar xOf "$1" bundle.json | python3 -c 'import json,sys; print(" ".join(sorted(i["ref"] for i in json.load(sys.stdin)["images"])))'; }

spec auto "images: auto"
ferry-build build auto.yaml -o auto.tar --key k.key 2>auto.log ||
	{ cat auto.log; fail "images: auto build failed"; }
[ "$(refs auto.tar)" = "registry.example.com/team/app:1.0" ] || fail "images: auto took: $(refs auto.tar)"
tar xOf auto.tar manifests/01-app.yaml | grep -q 'image: registry.example.com/team/app@sha256:' || fail "not pinned"
tar xOf auto.tar manifests/01-app.yaml | grep -q 'value: "registry.example.com/team/side:2.0"' ||
	fail "a suggested image not in the bundle was changed"
echo "images: auto -> $(refs auto.tar)"

spec flag ""
ferry-build build flag.yaml -o flag.tar --key k.key --auto-images --include-suggested --quiet
[ "$(refs flag.tar)" = "registry.example.com/team/app:1.0 registry.example.com/team/side:2.0" ] ||
	fail "--auto-images --include-suggested took: $(refs flag.tar)"
tar xOf flag.tar manifests/01-app.yaml | grep -q 'value: "registry.example.com/team/side@sha256:' ||
	fail "the suggested image was not pinned in its string"
echo "--auto-images --include-suggested -> $(refs flag.tar)"

# listed and discovered: listed once
spec both "images: [auto, registry.example.com/team/app:1.0]"
ferry-build build both.yaml -o both.tar --key k.key --quiet
[ "$(refs both.tar)" = "registry.example.com/team/app:1.0" ] || fail "auto plus a list: $(refs both.tar)"
echo "images: [auto, app] -> $(refs both.tar)"
exit 0
