# A bundle carries its installer (docs/portable.md): ferry-build build
# --with-installer PATH adds tools/ferry-install-linux-amd64 (mode 0755),
# listed in SHA256SUMS; the lab's first step needs only tar, openssl and
# sha256sum (the README's commands, run here exactly), and a tampered
# installer fails them; inspect shows the carried version, read from the
# verified bytes (nothing is run); install warns when the carried one is
# newer; a file that is no ferry-install is refused; FERRY_INSTALLER picks
# the default. Uses $BUILD/ferry-install (it holds the same marker as the
# portable one) so that it runs without `make portable`.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci python3 openssl sha256sum tar jq
V=$(cat "$TOP/VERSION")
INST=$(command -v ferry-install)

mkdir -p "$T/src/files"
echo "one $RANDOM" >"$T/src/files/one.txt"
make_image "$T/src/l" x1 "$T/src/files/one.txt"
cat >"$T/src/spec.yaml" <<'EOS'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: tools-test, version: "1"}
images:
  - {ref: docker.io/library/x:1, from: "oci-layout:./l:x1"}
EOS
ferry-build keygen -o "$T/k" >/dev/null
build() { ferry-build build "$T/src/spec.yaml" --key "$T/k.key" --cache "$T/cache" "$@"; }

# --- carried, listed, executable
build -o "$T/b.tar" --with-installer "$INST" 2>"$T/build.log"
grep "installer tools/ferry-install-linux-amd64 <- $INST: ferry-install $V" "$T/build.log" ||
	fail "no installer line: $(cat "$T/build.log")"
tar -tvf "$T/b.tar" | grep -E '^-rwxr-xr-x .* tools/ferry-install-linux-amd64$' ||
	fail "no executable tools/ member: $(tar -tvf "$T/b.tar")"
tar -xOf "$T/b.tar" SHA256SUMS | grep -qx "SHA256 (tools/ferry-install-linux-amd64) = $(sha256sum <"$INST" | cut -c1-64)" ||
	fail "SHA256SUMS does not list the installer's digest"
tar -xOf "$T/b.tar" tools/ferry-install-linux-amd64 | cmp -s - "$INST" || fail "carried bytes differ"
tar -xOf "$T/b.tar" bundle.json | jq -e '.tools[0].path == "tools/ferry-install-linux-amd64"' >/dev/null ||
	fail "bundle.json lists no tools"
ferry-install verify "$T/b.tar" --pubkey "$T/k.pub"

# --- the README's first step, without ferry
mkdir "$T/lab"
(
	cd "$T/lab"
	tar xf "$T/b.tar" SHA256SUMS SHA256SUMS.sig tools/
	openssl pkeyutl -verify -pubin -inkey "$T/k.pub" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig
	sha256sum -c --ignore-missing SHA256SUMS
	./tools/ferry-install-linux-amd64 --version
) | tee "$T/lab.out"
grep -q "Signature Verified Successfully" "$T/lab.out" || fail "openssl did not verify"
grep -q "tools/ferry-install-linux-amd64: OK" "$T/lab.out" || fail "sha256sum did not check it"
grep -qx "ferry-install $V" "$T/lab.out" || fail "extracted installer --version"
# a changed installer fails sha256sum; a changed SHA256SUMS fails openssl
printf 'X' | dd of="$T/lab/tools/ferry-install-linux-amd64" bs=1 seek=1000 conv=notrunc 2>/dev/null
(cd "$T/lab" && sha256sum -c --ignore-missing SHA256SUMS) && fail "sha256sum took a changed installer"
echo "x" >>"$T/lab/SHA256SUMS"
(cd "$T/lab" && openssl pkeyutl -verify -pubin -inkey "$T/k.pub" -rawin -in SHA256SUMS \
	-sigfile SHA256SUMS.sig) && fail "openssl took a changed SHA256SUMS"

# --- inspect shows the version, from the member
out=$(ferry-install inspect "$T/b.tar" --pubkey "$T/k.pub")
echo "$out" | grep -E "tools/ferry-install-linux-amd64 +ferry-install $V " || fail "inspect: $out"
ferry-install inspect "$T/b.tar" --pubkey "$T/k.pub" --json |
	jq -e --arg v "$V" '.installer.version == $v and .installer.path == "tools/ferry-install-linux-amd64"' >/dev/null ||
	fail "inspect --json: no installer version"

# --- a newer carried installer: install warns; an older one: no warning.
# The marker is patched in a copy (same length): nothing from it is run.
newer=$(echo "$V" | awk -F. '{printf "%d.%s", $1 + 1, substr($0, index($0, ".") + 1)}')
older=$(echo "$V" | sed 's/[0-9]/0/g')
[ ${#newer} = ${#V} ] || newer=$(echo "$V" | sed 's/^./9/')
patch_marker() {
	python3 - "$INST" "$2" "$V" "$1" <<'EOP'
import sys
src, dst, old, new = sys.argv[1:5]
b = open(src, "rb").read()
k = b"FERRY_VERSION=" + old.encode() + b"\0"
assert b.count(k) >= 1 and len(old) == len(new)
open(dst, "wb").write(b.replace(k, b"FERRY_VERSION=" + new.encode() + b"\0"))
EOP
	chmod +x "$2"
}
patch_marker "$newer" "$T/newer"
patch_marker "$older" "$T/older"
build -o "$T/new.tar" --with-installer "$T/newer" 2>/dev/null
build -o "$T/old.tar" --with-installer "$T/older" 2>/dev/null
ferry-install inspect "$T/new.tar" --pubkey "$T/k.pub" | grep -q "ferry-install $newer " ||
	fail "inspect does not show $newer"
inst() { ferry-install install "$1" --pubkey "$T/k.pub" --target crio --dry-run 2>&1 || true; }
inst "$T/new.tar" | tee "$T/inst-new" | grep -q "this ferry-install is $V, older than the $newer the bundle carries" ||
	fail "no warning for a newer installer: $(cat "$T/inst-new")"
inst "$T/old.tar" | tee "$T/inst-old" | grep -q "step 1/5" || fail "install did not start: $(cat "$T/inst-old")"
grep -q "older than" "$T/inst-old" && fail "warned about an older installer"
inst "$T/b.tar" | grep -q "older than" && fail "warned about the same version"

# --- refused: no ferry-install; a missing file
expect_fail 1 "not a ferry-install \(no FERRY_VERSION= marker\)" \
	build -o "$T/bad.tar" --with-installer /bin/true
expect_fail 1 "not a ferry-install \(not an ELF file\)" build -o "$T/bad.tar" --with-installer "$T/k.pub"
expect_fail 1 "with-installer $T/nope" build -o "$T/bad.tar" --with-installer "$T/nope"

# --- the default: $FERRY_INSTALLER (lib.sh sets "none"); --without-installer wins
FERRY_INSTALLER=$INST build -o "$T/d.tar" 2>/dev/null
tar -tf "$T/d.tar" | grep -qx tools/ferry-install-linux-amd64 || fail "FERRY_INSTALLER=PATH ignored"
FERRY_INSTALLER=$INST build -o "$T/e.tar" --without-installer 2>/dev/null
tar -tf "$T/e.tar" | grep -q '^tools/' && fail "--without-installer ignored"
build -o "$T/f.tar" 2>/dev/null
tar -tf "$T/f.tar" | grep -q '^tools/' && fail "FERRY_INSTALLER=none ignored"
echo "ok: the bundle carries its installer"
