#!/bin/bash
# --models-dir places the model files as <name>/<version>/<file> with their
# sha256 checked; a second run skips them as present; a damaged file is
# replaced; --dry-run writes nothing; the report gives done / skipped /
# time for every step. In a network namespace with only loopback.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need containerd ctr umoci python3
assert_airgap
make_bundle
start_containerd "$T/ctd"
M=$T/models
run() {
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
		--snapshotter native --models-dir "$M" "$@"
}

# --- dry-run: nothing is written
run --dry-run >"$T/out" || { cat "$T/out"; fail "dry-run"; }
grep -q "would place $M/mnist/1/model.onnx" "$T/out" || fail "dry-run did not list the model file"
[ ! -e "$M" ] || fail "dry-run created $M"
[ "$($CTR images ls -q | wc -l)" -eq 0 ] || fail "dry-run imported images"

# --- first run
run >"$T/out" || { cat "$T/out"; fail "first run"; }
cat "$T/out"
grep -qE "models +placed 2, skipped 0" "$T/out" || fail "first run did not place 2 files"
grep -q "model mnist 1: KServe storageUri oci://models.ferry.local/mnist-modelcar:1$" "$T/out" ||
	fail "install did not say the storageUri of the modelcar"
for f in model.onnx config.json; do
	cmp "$T/src/models/$f" "$M/mnist/1/$f" || fail "$f differs from the source"
done
# the report: a line per step with done, skipped and the time
for s in verify images manifests models; do
	grep -qE "^  $s +" "$T/out" || fail "the report has no $s line"
done
grep -qE "^==> step 5/5: report \([0-9.]+s in all\)" "$T/out" || fail "the report has no total time"

# --- second run: skipped as present
run >"$T/out" || { cat "$T/out"; fail "second run"; }
grep -qE "models +placed 0, skipped 2" "$T/out" || fail "second run did not skip: $(grep models "$T/out")"
grep -qE "images +done 0, skipped $N_IMAGES" "$T/out" || fail "second run imported images"

# --- a damaged file (same size) is found and replaced
python3 - "$M/mnist/1/model.onnx" <<'EOF'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[1000] ^= 0xff
open(p, "wb").write(d)
EOF
run >"$T/out" || { cat "$T/out"; fail "third run"; }
grep -qE "models +placed 1, skipped 1" "$T/out" || fail "the damaged file was not replaced"
cmp "$T/src/models/model.onnx" "$M/mnist/1/model.onnx" || fail "the replaced file differs"

# --- a models dir that cannot be written: a clear error naming the step
touch "$T/notadir"
expect_fail 1 "step 4/5 place models" run --models-dir "$T/notadir/sub"
echo "ok: models"
