# The tamper matrix: every way of changing a signed bundle is refused by
# `ferry-install verify` with exit code 2 and a message naming the member.
. "$(dirname "$0")/lib.sh"

for t in umoci python3 gzip; do
	command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
done

W=$T/w
S=$W/src
mkdir -p "$S/manifests" "$S/models" "$W/bad"
cd "$S"
echo hello >hello.txt
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256))*400)' >data.bin
make_image img/app 1 hello.txt data.bin
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n' >manifests/ns.yaml
python3 -c 'import sys; sys.stdout.buffer.write(b"weights" * 1000)' >models/w.bin
cat >spec.yaml <<'EOF'
apiVersion: ferry/v1
kind: Bundle
metadata:
  name: tamper
images:
  - ref: example.local/app:1
    from: oci-layout:./img/app:1
manifests:
  - path: ./manifests
models:
  - {name: w, version: "1", path: ./models/w.bin}
EOF
ferry-build keygen -o "$W/k" >/dev/null
ferry-build keygen -o "$W/other" >/dev/null
B=$W/b.tar
ferry-build build "$S/spec.yaml" -o "$B" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>&1
ferry-install verify "$B" --pubkey "$W/k.pub" >/dev/null

# tam.py: read member offsets with tarfile and write tampered copies.
cat >"$W/tam.py" <<'EOF'
import copy, io, shutil, sys, tarfile

def members(path):
    with tarfile.open(path, "r:") as tf:
        out = []
        for m in tf.getmembers():
            data = tf.extractfile(m).read() if m.isreg() else None
            out.append((m, data))
        return out

def write(out, ms):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for m, data in ms:
            if data is not None:
                m.size = len(data)
                tf.addfile(m, io.BytesIO(data))
            else:
                tf.addfile(m)

def find(ms, name):
    for i, (m, _) in enumerate(ms):
        if m.name == name:
            return i
    sys.exit("no member " + name)

def info(name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mtime = 1700000000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti

cmd, src, *args = sys.argv[1:]
if cmd == "list":  # name offset_data size
    with tarfile.open(src, "r:") as tf:
        for m in tf.getmembers():
            print(m.name, m.offset, m.offset_data, m.size)
    sys.exit(0)
out = args.pop(0)
if cmd == "flip":  # flip one byte in the middle of a member's data
    with tarfile.open(src, "r:") as tf:
        m = tf.getmember(args[0])
    shutil.copyfile(src, out)
    with open(out, "r+b") as f:
        f.seek(m.offset_data + m.size // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    sys.exit(0)
if cmd == "append":  # tarfile append mode: a new member after the last one
    shutil.copyfile(src, out)
    with tarfile.open(out, "a") as tf:
        tf.addfile(info(args[0], args[1].encode()), io.BytesIO(args[1].encode()))
    sys.exit(0)
ms = members(src)
if cmd == "identity":
    pass
elif cmd == "swap-data":  # two members trade contents
    i, j = find(ms, args[0]), find(ms, args[1])
    (mi, di), (mj, dj) = ms[i], ms[j]
    ms[i], ms[j] = (mi, dj), (mj, di)
elif cmd == "swap-order":  # two members trade places
    i, j = find(ms, args[0]), find(ms, args[1])
    ms[i], ms[j] = ms[j], ms[i]
elif cmd == "drop":
    del ms[find(ms, args[0])]
elif cmd == "dup":  # the member a second time, right after itself
    i = find(ms, args[0])
    ms.insert(i + 1, (copy.copy(ms[i][0]), ms[i][1]))
elif cmd == "add-file":  # NAME DATA: a regular file at the end
    ms.append((info(args[0], args[1].encode()), args[1].encode()))
elif cmd == "add-symlink":  # NAME TARGET
    ms.append((info(args[0], type=tarfile.SYMTYPE, linkname=args[1]), None))
elif cmd == "add-hardlink":  # NAME TARGET
    ms.append((info(args[0], type=tarfile.LNKTYPE, linkname=args[1]), None))
elif cmd == "add-fifo":
    ms.append((info(args[0], type=tarfile.FIFOTYPE), None))
elif cmd == "replace-link":  # turn member NAME into a symlink to TARGET
    i = find(ms, args[0])
    ms[i] = (info(args[0], type=tarfile.SYMTYPE, linkname=args[1]), None)
else:
    sys.exit("unknown command " + cmd)
write(out, ms)
EOF
tam() { python3 "$W/tam.py" "$@"; }

# the names of a few members
tam list "$B" >"$W/members"
member() { awk -v p="$1" 'index($1, p) == 1 { print $1; exit }' "$W/members"; }
BLOB=$(sort -k4 -n -r "$W/members" | awk '$1 ~ /^blobs\// { print $1; exit }') # the largest layer
BLOB2=$(sort -k4 -n "$W/members" | awk '$1 ~ /^blobs\// { print $1; exit }')   # the smallest blob
MAN=$(member manifests/)
MODEL=$(member models/)
LAST=$(tail -n 1 "$W/members" | cut -d' ' -f1)
[ -n "$BLOB" ] && [ -n "$BLOB2" ] && [ "$BLOB" != "$BLOB2" ] && [ -n "$MAN" ] && [ -n "$MODEL" ] ||
	fail "unexpected members: $(cat "$W/members")"
off() { awk -v n="$1" '$1 == n { print $'"$2"' }' "$W/members"; }

verify() { ferry-install verify "$1" --pubkey "$W/k.pub"; }
# refused BUNDLE PATTERN: exit 2, the pattern (the member) in the message,
# and the usual VERIFICATION FAILED line
refused() {
	expect_fail 2 "$2" verify "$1"
	echo "    $(echo "$out" | head -n 1)" # expect_fail leaves the output in $out
	ferry-install verify "$1" --pubkey "$W/k.pub" 2>&1 | grep -q 'VERIFICATION FAILED' ||
		fail "no VERIFICATION FAILED line for $1"
}
re() { printf '%s' "$1" | sed 's/[.[\*^$/]/\\&/g'; } # a name as a grep -E pattern

# A control: the python rewrite alone keeps a bundle valid, so every refusal
# below comes from the tampering, not from the rewriting.
tam identity "$B" "$W/bad/identity.tar"
verify "$W/bad/identity.tar" >/dev/null || fail "an untouched rewrite does not verify"

echo "== one flipped byte in each member's data"
for m in SHA256SUMS SHA256SUMS.sig bundle.json oci-layout index.json "$BLOB" "$BLOB2" "$MAN" "$MODEL"; do
	f=$W/bad/flip-$(echo "$m" | tr / _).tar
	tam flip "$B" "$f" "$m"
	cmp -s "$B" "$f" && fail "flip of $m changed nothing"
	case $m in
	SHA256SUMS | SHA256SUMS.sig) refused "$f" 'SHA256SUMS\.sig.*(signature|verif)' ;;
	*) refused "$f" "digest mismatch in member '$(re "$m")'" ;;
	esac
done

echo "== truncated"
SIZE=$(stat -c %s "$B")
MAN_HDR=$(off "$MAN" 2)
BLOB_DATA=$(off "$BLOB" 3)
BLOB_SIZE=$(off "$BLOB" 4)
LAST_HDR=$(off "$LAST" 2)
LAST_END=$(( $(off "$LAST" 3) + ($(off "$LAST" 4) + 511) / 512 * 512 ))
BEFORE_MAN=$(awk -v n="$MAN" '$1 == n { print prev; exit } { prev = $1 }' "$W/members")
i=0
for spec in "$((MAN_HDR + 100)):after '$(re "$BEFORE_MAN")'.*[Tt]runcated" \
	"$((BLOB_DATA + BLOB_SIZE / 2)):$(re "$BLOB").*truncated" \
	"$((BLOB_DATA + 1)):$(re "$BLOB").*truncated" \
	"1000:SHA256SUMS.*truncated" \
	"100:SHA256SUMS" \
	"$LAST_HDR:$(re "$LAST")" \
	"$((SIZE - 1)):end-of-archive marker after member '$(re "$LAST")'" \
	"$LAST_END:end-of-archive marker after member '$(re "$LAST")'" \
	"$((LAST_END + 512)):end-of-archive marker after member '$(re "$LAST")'" \
	"0:SHA256SUMS"; do
	len=${spec%%:*} pat=${spec#*:}
	i=$((i + 1))
	head -c "$len" "$B" >"$W/bad/trunc$i.tar"
	refused "$W/bad/trunc$i.tar" "$pat"
done

echo "== data after the end of the archive"
{ cat "$B"; printf 'junk'; } >"$W/bad/junk.tar"
refused "$W/bad/junk.tar" "unexpected data after the end of the archive \(after member '$(re "$LAST")'"
cat "$B" "$W/bad/identity.tar" >"$W/bad/two.tar" # a second archive: `tar -i` would read on
refused "$W/bad/two.tar" "unexpected data after the end of the archive"
# zeros are padding (tar writers round up to their record size): fine
{ cat "$B"; head -c 10240 /dev/zero; } >"$W/bad/padded.tar"
verify "$W/bad/padded.tar" >/dev/null || fail "zero padding after the end was refused"

echo "== an extra member"
tam append "$B" "$W/bad/append.tar" models/w/1/extra.bin 'not listed'
refused "$W/bad/append.tar" "models/w/1/extra\.bin.*not listed"
tam append "$B" "$W/bad/append2.tar" README 'hello'
refused "$W/bad/append2.tar" "'README'.*not part of the bundle"
tam dup "$B" "$W/bad/dup.tar" "$BLOB2"
refused "$W/bad/dup.tar" "$(re "$BLOB2").*twice"

echo "== two blobs swap contents"
tam swap-data "$B" "$W/bad/swap.tar" "$BLOB" "$BLOB2"
refused "$W/bad/swap.tar" "digest mismatch in member '($(re "$BLOB")|$(re "$BLOB2"))'"
tam swap-data "$B" "$W/bad/swap2.tar" "$MAN" "$MODEL"
refused "$W/bad/swap2.tar" "digest mismatch in member '$(re "$MAN")'"

echo "== unsafe members"
tam add-file "$B" "$W/bad/dotdot.tar" ../evil 'gotcha'
refused "$W/bad/dotdot.tar" "'\.\./evil'.*unsafe|unsafe.*'\.\./evil'"
tam add-file "$B" "$W/bad/dotdot2.tar" models/w/../../../evil 'gotcha'
refused "$W/bad/dotdot2.tar" "models/w/\.\./\.\./\.\./evil"
tam add-file "$B" "$W/bad/abs.tar" /tmp/evil 'gotcha'
refused "$W/bad/abs.tar" "/tmp/evil"
tam add-symlink "$B" "$W/bad/symlink.tar" models/w/1/link /etc/passwd
refused "$W/bad/symlink.tar" "models/w/1/link.*link"
tam replace-link "$B" "$W/bad/symlink2.tar" "$MODEL" /etc/passwd
refused "$W/bad/symlink2.tar" "$(re "$MODEL").*link"
tam add-hardlink "$B" "$W/bad/hardlink.tar" models/w/1/hard "$MODEL"
refused "$W/bad/hardlink.tar" "models/w/1/hard.*link"
tam add-fifo "$B" "$W/bad/fifo.tar" models/w/1/fifo
refused "$W/bad/fifo.tar" "models/w/1/fifo.*not a regular file"

echo "== wrong order"
tam swap-order "$B" "$W/bad/order.tar" bundle.json index.json
refused "$W/bad/order.tar" "out of order.*'index\.json'"
tam swap-order "$B" "$W/bad/order2.tar" SHA256SUMS SHA256SUMS.sig
refused "$W/bad/order2.tar" "SHA256SUMS\.sig.*(order|expected)"
tam swap-order "$B" "$W/bad/order3.tar" "$BLOB" "$MAN"
refused "$W/bad/order3.tar" "out of order.*'$(re "$MAN")'"

echo "== a missing member"
tam drop "$B" "$W/bad/drop-blob.tar" "$BLOB"
refused "$W/bad/drop-blob.tar" "missing member '$(re "$BLOB")'"
tam drop "$B" "$W/bad/drop-model.tar" "$MODEL"
refused "$W/bad/drop-model.tar" "missing member '$(re "$MODEL")'"
tam drop "$B" "$W/bad/drop-json.tar" bundle.json
refused "$W/bad/drop-json.tar" "bundle\.json"
tam drop "$B" "$W/bad/drop-sig.tar" SHA256SUMS.sig
refused "$W/bad/drop-sig.tar" "SHA256SUMS\.sig"
tam drop "$B" "$W/bad/drop-sums.tar" SHA256SUMS
refused "$W/bad/drop-sums.tar" "SHA256SUMS"

echo "== another key"
expect_fail 2 'SHA256SUMS\.sig' ferry-install verify "$B" --pubkey "$W/other.pub"

echo "== a compressed bundle"
gzip -c "$B" >"$W/bad/b.tar.gz"
refused "$W/bad/b.tar.gz" "not an uncompressed tar bundle: the file is gzip-compressed"

echo "== --insecure-skip-signature"
# a bad signature, good digests: accepted, loudly
tam flip "$B" "$W/bad/badsig.tar" SHA256SUMS.sig
expect_fail 2 'SHA256SUMS\.sig' verify "$W/bad/badsig.tar"
out=$(ferry-install verify "$W/bad/badsig.tar" --insecure-skip-signature 2>&1) ||
	fail "--insecure-skip-signature refused a bundle with good digests: $out"
echo "$out" | grep -q 'WARNING: signature NOT checked' || fail "no warning: $out"
# no key needed either
ferry-install verify "$W/bad/badsig.tar" --insecure-skip-signature --pubkey "$W/other.pub" >/dev/null
# ... but every digest is still checked
expect_fail 2 "digest mismatch in member '$(re "$BLOB")'" \
	ferry-install verify "$W/bad/flip-$(echo "$BLOB" | tr / _).tar" --insecure-skip-signature
expect_fail 2 "models/w/1/extra\.bin" \
	ferry-install verify "$W/bad/append.tar" --insecure-skip-signature
expect_fail 2 "\.\./evil" ferry-install verify "$W/bad/dotdot.tar" --insecure-skip-signature

# the original is untouched by all of this and still verifies
verify "$B" >/dev/null
echo "foundation_tamper: ok"
