# An unchanged rebuild leaves the output alone; any change (content, the
# file on disk, SOURCE_DATE_EPOCH) writes it again.
. "$(dirname "$0")/lib.sh"
unset SOURCE_DATE_EPOCH
cd "$T"
make_image "$T/img" 1.0 /etc/hostname >/dev/null
mkdir man
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n' >man/ns.yaml
cat >spec.yaml <<'SPEC'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: rb, version: "1"}
images:
  - ref: example.local/rb/img:1.0
    from: oci-layout:./img:1.0
manifests:
  - path: ./man
SPEC
ferry-build keygen -o k >/dev/null
build() { ferry-build build spec.yaml -o out/b.tar --key k.key --cache cache 2>&1; }
ident() { stat -c '%i %Y %s' out/b.tar; }
mkdir out
build >/dev/null
first=$(ident)
cp out/b.tar first.tar

# 1. unchanged: up to date, the same file (inode, mtime, bytes)
sleep 1.1
build | grep -q 'is up to date' || fail "unchanged rebuild rewrote the bundle"
[ "$(ident)" = "$first" ] || fail "unchanged rebuild touched the file"
cmp out/b.tar first.tar
ferry-install verify out/b.tar --pubkey k.pub >/dev/null

# 2. a changed manifest: written again, and it verifies with the new content
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: b\n' >man/ns.yaml
build | grep -q 'is up to date' && fail "changed content was not written"
[ "$(ident)" != "$first" ] || fail "changed content left the old file"
ferry-install verify out/b.tar --pubkey k.pub >/dev/null
mkdir x && tar xf out/b.tar -C x && grep -q 'name: b' x/manifests/01-ns.yaml
second=$(ident)

# 3. the file changed on disk (same size, new mtime): written again
sleep 1.1
build | grep -q 'is up to date' || fail "expected up to date before tampering"
python3 - out/b.tar <<'PY'
import sys, os
p = sys.argv[1]
with open(p, 'r+b') as f:
    f.seek(os.path.getsize(p) // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 1]))
PY
expect_fail 2 'digest mismatch|truncated|member' ferry-install verify out/b.tar --pubkey k.pub
build | grep -q 'is up to date' && fail "a tampered output was taken as up to date"
ferry-install verify out/b.tar --pubkey k.pub >/dev/null

# 4. SOURCE_DATE_EPOCH: a new value rewrites, the same value is up to date
SOURCE_DATE_EPOCH=1700000000 build | grep -q 'is up to date' && fail "new creation time not written"
SOURCE_DATE_EPOCH=1700000000 build | grep -q 'is up to date' || fail "same creation time rewrote"
cp out/b.tar sde.tar
rm -rf cache2
SOURCE_DATE_EPOCH=1700000000 ferry-build build spec.yaml -o out/c.tar --key k.key --cache cache2 >/dev/null 2>&1
cmp out/c.tar sde.tar || fail "reproducibility broken"
echo "rebuild ok"
