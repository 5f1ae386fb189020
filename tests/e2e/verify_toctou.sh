# The file verified is the file read, and only verified bytes are used:
#  - a bundle changed in place after `install` verified it (mtime restored,
#    as an attacker would): the changed model is refused by name (exit 2),
#    nothing of it is placed, and no changed byte reaches kubectl;
#  - a tampered file renamed over the path while `install` runs: the install
#    goes on from the file it verified, and places the signed bytes;
#  - signed input only: inspect and mirror-config without --pubkey are
#    usage errors, --insecure-skip-signature warns and says so in the
#    report, and install refuses it.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"

S=$T/src
mkdir -p "$S/man" "$S/models" "$T/bin"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n' >"$S/man/01-ns.yaml"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: lab\ndata:\n  mode: good\n' \
	>"$S/man/02-cm.yaml"
python3 -c 'import sys; sys.stdout.buffer.write(b"weights." * 4096)' >"$S/models/w.bin"
cat >"$S/spec.yaml" <<'EOF'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: toctou, version: "1"}
manifests:
  - path: ./man
models:
  - {name: w, version: "1", path: ./models/w.bin}
EOF
ferry-build keygen -o "$T/k" >/dev/null
ferry-build build "$S/spec.yaml" -o "$T/good.tar" --key "$T/k.key" --cache "$T/cache" >/dev/null 2>&1 ||
	fail "build"
ferry-install verify "$T/good.tar" --pubkey "$T/k.pub" >/dev/null

# where a member's data starts (Python's tarfile, not ferry)
data_off() {
	python3 - "$1" "$2" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    for m in tf.getmembers():
        if m.name == sys.argv[2]:
            print(m.offset_data)
EOF
}
MODEL_OFF=$(data_off "$T/good.tar" models/w/1/w.bin)
CM_OFF=$(( $(data_off "$T/good.tar" manifests/02-02-cm.yaml) + \
	$(tar -xOf "$T/good.tar" manifests/02-02-cm.yaml | grep -bo 'good' | cut -d: -f1) ))
[ -n "$MODEL_OFF" ] && [ -n "$CM_OFF" ] || fail "member offsets"

# kubectl: the recording stand-in, behind a wrapper that runs $TAMPER_CMD
# once, on its first call (after verification, before models are placed)
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/kubectl-standin"
cat >"$T/bin/kubectl" <<EOF
#!/bin/bash
if [ -n "\${TAMPER_CMD:-}" ] && [ ! -e "$T/tampered" ]; then
	touch "$T/tampered"
	bash -c "\$TAMPER_CMD"
fi
exec "$T/bin/kubectl-standin" "\$@"
EOF
chmod +x "$T/bin/kubectl"
export PATH="$T/bin:$PATH"

run_install() { # NAME BUNDLE
	export KUBECTL_STANDIN_LOG=$T/$1.log
	rm -rf "$T/tampered" "$T/models-$1" "$KUBECTL_STANDIN_LOG"*
	set +e
	ferry-install install "$2" --pubkey "$T/k.pub" --target kind:demo --nodes n1 \
		--node-runner local --archive-out "$T/$1.archive" --models-dir "$T/models-$1" >"$T/$1.out" 2>&1
	RC=$?
	set -e
	[ -e "$T/tampered" ] || fail "$1: the kubectl wrapper never ran: $(cat "$T/$1.out")"
}
no_evil_applied() { # NAME
	if grep -rl "evil\|EVIL" "$T/$1.log.d" 2>/dev/null; then
		fail "$1: changed bytes reached kubectl"
	fi
}

# --- 1. changed in place after verification, mtime put back: refused
cp "$T/good.tar" "$T/b1.tar"
export TAMPER_CMD="mt=\$(stat -c %y '$T/b1.tar'); printf EVILEVIL | dd of='$T/b1.tar' bs=1 seek=$((MODEL_OFF + 100)) conv=notrunc status=none; printf evil | dd of='$T/b1.tar' bs=1 seek=$CM_OFF conv=notrunc status=none; touch -d \"\$mt\" '$T/b1.tar'"
run_install inplace "$T/b1.tar"
cat "$T/inplace.out"
[ "$RC" = 2 ] || fail "in-place change: exit $RC, expected 2"
grep -q "models .*placed 0" "$T/inplace.out" || fail "the report counts the refused model as placed"
grep -q "nothing was touched" "$T/inplace.out" && fail "claims nothing was touched after manifests were applied"
grep -q "models/w/1/w.bin" "$T/inplace.out" || fail "the refusal does not name the model"
[ -e "$T/models-inplace/w/1/w.bin" ] && fail "the changed model was placed"
if [ -d "$T/models-inplace" ] && find "$T/models-inplace" -type f | grep -q .; then
	fail "files were left in the models folder: $(find "$T/models-inplace" -type f)"
fi
no_evil_applied inplace
# the bytes in the file really are changed (the test did what it says)
[ "$(dd if="$T/b1.tar" bs=1 skip=$((MODEL_OFF + 100)) count=8 status=none)" = EVILEVIL ] ||
	fail "the tamper did not happen"
grep -q "ConfigMap/cfg" "$T/inplace.log" && ! grep -rq "mode: good" "$T/inplace.log.d" &&
	fail "a ConfigMap was applied with other bytes than the signed ones"
echo "in place: refused, nothing changed was used"

# --- 2. a tampered copy renamed over the path: the verified file is used
cp "$T/good.tar" "$T/b2.tar"
cp "$T/good.tar" "$T/evil.tar"
printf EVILEVIL | dd of="$T/evil.tar" bs=1 seek=$((MODEL_OFF + 100)) conv=notrunc status=none
export TAMPER_CMD="mv '$T/evil.tar' '$T/b2.tar'"
run_install swap "$T/b2.tar"
cat "$T/swap.out"
[ "$RC" = 0 ] || fail "rename swap: exit $RC"
cmp "$T/models-swap/w/1/w.bin" "$S/models/w.bin" || fail "the placed model is not the signed one"
[ "$(dd if="$T/b2.tar" bs=1 skip=$((MODEL_OFF + 100)) count=8 status=none)" = EVILEVIL ] ||
	fail "the swap did not happen"
no_evil_applied swap
grep -rq "mode: good" "$T/swap.log.d" || fail "the signed ConfigMap was not applied"
echo "swap: the file that was verified is the one that was read"
unset TAMPER_CMD

# --- 3. signed input only
expect_fail 64 "public key is required" ferry-install inspect "$T/good.tar"
ferry-install inspect "$T/good.tar" --insecure-skip-signature --json >"$T/i.json" 2>"$T/i.err"
grep -q WARNING "$T/i.err" || fail "inspect --insecure-skip-signature: no warning"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["signatureVerified"] is False and d["insecureSkipSignature"] is True' "$T/i.json" ||
	fail "the inspect report does not say the signature was skipped"
ferry-install inspect "$T/good.tar" --insecure-skip-signature | grep -q "signature NOT checked" ||
	fail "the inspect text does not say the signature was skipped"
ferry-install inspect "$T/good.tar" --pubkey "$T/k.pub" | grep -q "signature verified" || fail "inspect"
expect_fail 64 "public key is required" ferry-install mirror-config "$T/good.tar" \
	--registry 127.0.0.1:5000 --format containerd -o "$T/mc"
[ -e "$T/mc" ] && fail "mirror-config wrote files without a key"
expect_fail 64 "refused" ferry-install install "$T/good.tar" --insecure-skip-signature --target kind:demo \
	--nodes n1 --dry-run
expect_fail 64 "pubkey KEY.pub is required" ferry-install install "$T/good.tar" --target kind:demo --nodes n1 --dry-run
echo "ok: toctou and signed input"
exit 0
