# Bad manifests stop the build with the file and the place, and no bundle
# is written: not YAML, a document without kind, a 50 MB single-line value.
. "$(dirname "$0")/lib.sh"
cd "$T"
ferry-build keygen -o k >/dev/null
mkdir notyaml nokind big
printf 'apiVersion: v1\nkind: ConfigMap\ndata:\n  a: "unterminated\n' >notyaml/cm.yaml
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n# second\napiVersion: v1\nmetadata: {name: x}\n' >nokind/two.yaml
python3 -c '
with open("big/cm.yaml", "w") as f:
    f.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: " + "y" * (50 << 20) + "\n")'
for case in notyaml nokind big; do
	cat >$case.spec.yaml <<Y
apiVersion: ferry/v1
kind: Bundle
metadata: {name: bad}
manifests:
- path: $case
Y
done
expect_fail 1 'notyaml.spec.yaml:5: manifests entry: ./notyaml/cm.yaml:[0-9]+:[0-9]+: YAML syntax error' \
	ferry-build build notyaml.spec.yaml -o b1.tar --key k.key
expect_fail 1 "nokind.spec.yaml:5: manifests entry: ./nokind/two.yaml:6:1: document 2 has no 'kind'" \
	ferry-build build nokind.spec.yaml -o b2.tar --key k.key
start=$(date +%s)
# under a 1 GiB address-space limit (not with AddressSanitizer or ThreadSanitizer, whose shadow
# memory needs far more address space)
limit='ulimit -v 1048576;'
ldd "$(command -v ferry-build)" 2>/dev/null | grep -qE "libasan|libtsan" && limit=
expect_fail 1 'big.spec.yaml:5: manifests entry: ./big/cm.yaml:5:9: document 1: a value of 52428800 bytes is over the 2 MiB cap' \
	/usr/bin/env bash -c "$limit exec ferry-build build big.spec.yaml -o b3.tar --key k.key"
echo "50 MB value refused in $(( $(date +%s) - start )) s${limit:+ under a 1 GiB address-space limit}"
for b in b1 b2 b3; do [ ! -e $b.tar ] || fail "$b.tar was written"; done
ls -A | grep -q '\.tmp\.' && fail "a temp file was left behind"
exit 0
