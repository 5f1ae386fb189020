#!/bin/bash
# Verify throughput: ferry-install verify vs sha256sum of the same bundle,
# same run, page cache warm for both. FERRY_BENCH_GB sets the size (>= 1).
. "$(dirname "$0")/lib.sh"
GB=${FERRY_BENCH_GB:-1}
layers=$((GB * 8))
make_layout "$B/img" v1 "$layers" 128 verify
cat >"$B/spec.yaml" <<SPEC
apiVersion: ferry/v1
kind: Bundle
metadata: {name: bench, version: "1"}
images:
  - ref: bench.local/big:1
    from: oci-layout:./img:v1
SPEC
ferry-build keygen -o "$B/k" >/dev/null
ferry-build build "$B/spec.yaml" -o "$B/b.tar" --key "$B/k.key" --cache "$B/cache" --quiet >/dev/null
rm -rf "$B/cache" "$B/img"
size=$(stat -c %s "$B/b.tar")
cat "$B/b.tar" >/dev/null # warm the page cache for both
best_f=999 best_s=999 best_1=999
for _ in 1 2 3; do
	f=$(secs_of ferry-install verify "$B/b.tar" --pubkey "$B/k.pub")
	s=$(secs_of sha256sum "$B/b.tar")
	o=$(secs_of ferry-install verify "$B/b.tar" --pubkey "$B/k.pub" --jobs 1)
	best_f=$(echo "if ($f < $best_f) $f else $best_f" | bc -l)
	best_s=$(echo "if ($s < $best_s) $s else $best_s" | bc -l)
	best_1=$(echo "if ($o < $best_1) $o else $best_1" | bc -l)
done
ferry-install verify "$B/b.tar" --pubkey "$B/k.pub" >/dev/null # must pass
rss=$(peak_rss_kb ferry-install verify "$B/b.tar" --pubkey "$B/k.pub")
mbps_f=$(echo "$size / 1048576 / $best_f" | bc -l)
mbps_s=$(echo "$size / 1048576 / $best_s" | bc -l)
echo "verify: bundle $((size / 1048576)) MiB"
printf 'verify: ferry-install verify %.2fs (%.0f MiB/s), sha256sum %.2fs (%.0f MiB/s)\n' "$best_f" "$mbps_f" "$best_s" "$mbps_s"
echo "verify: throughput ratio ferry/sha256sum = $(ratio "$best_s" "$best_f")x (goal >= 3.5x)"
printf 'verify: one hashing thread (--jobs 1) %.2fs; every CPU (%s) is %sx that (goal >= 1.6x on 2 cores)\n' \
	"$best_1" "$(nproc)" "$(ratio "$best_1" "$best_f")"
echo "verify: peak RSS $((rss / 1024)) MiB ($rss KiB) (goal < 32 MiB)"
