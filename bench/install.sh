#!/bin/bash
# ferry-install install (issue 6), same run, same images, loopback only:
#   1. load mode: `ferry-install install B --target containerd:SOCK` into a
#      private containerd (temporary root, state and socket; the native
#      snapshotter as in the tests, FERRY_BENCH_SNAPSHOTTER=overlayfs for
#      what nodes run) against what is done by hand today, `skopeo copy` of
#      each image from the bundle's OCI layout (extracted beforehand, not
#      timed) into an oci-archive, then `ctr -n k8s.io images import`;
#      then both again with the unpack left for later (ferry --unpack lazy
#      against `ctr images import --no-unpack`): CRI unpacks an image when
#      its first container is created, so this is a different job, shown
#      apart and never mixed into the ratio above;
#   2. push mode: `ferry-install push B --to 127.0.0.1:PORT --plain-http`
#      into a Debian docker-registry against `skopeo copy` of each image from
#      that layout into the same kind of registry (skopeo 1.9's `sync` reads
#      no OCI layout, so copy it is);
#   3. ferry's peak RSS (GNU time; in load mode that counts the `ctr import`
#      children it streams into, so ferry's own VmHWM is printed too).
# Every run gets a fresh containerd state or registry storage. The peer runs
# image by image (as people do it) and, separately, with all images at once
# (ferry streams the large blobs in one stream per CPU, at most 4); the
# ratio is against the
# faster of the two. Best of FERRY_BENCH_RUNS (default 3) for each.
# FERRY_BENCH_INSTALL_MB sets the corpus (default 400: 4 images, a shared
# base layer and 3 own gzip layers each). FERRY_BENCH_INSTALL_PARTS picks
# the parts (default "load,push"; e.g. "push" runs only the push part).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../tests/e2e/containerd_conf.bash"
for t in containerd ctr docker-registry skopeo curl python3 gzip tar openssl; do
	command -v $t >/dev/null || { echo "install: $t is not installed; skipped"; exit 0; }
done
MB=${FERRY_BENCH_INSTALL_MB:-400}
RUNS=${FERRY_BENCH_RUNS:-3}
SN=${FERRY_BENCH_SNAPSHOTTER:-native}
PARTS=${FERRY_BENCH_INSTALL_PARTS:-load,push}
part() { [[ ,$PARTS, == *,$1,* ]]; }
IMAGES=4 OWN=3
base_mb=$(((MB + 9) / 10))
own_mb=$(((MB - base_mb) / (IMAGES * OWN)))
[ "$own_mb" -ge 1 ] || own_mb=1

# up CMD...: wait (up to ~10 s) until CMD succeeds
up() {
	for _ in $(seq 200); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
min() { echo "if ($1 < $2) $1 else $2" | bc -l; }

# --- the corpus: real gzip layers (a tar holding one file of random bytes),
# so that containerd can unpack them; made by hand, blobs named by sha256.
L=$B/src
mkdir -p "$L/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
layer() { # MB SEED: writes the blob, prints "DIGEST DIFF_ID SIZE"
	local w=$B/gen.$2 d h
	mkdir -p "$w"
	openssl enc -aes-128-ctr -pass "pass:install-$2" -nosalt -pbkdf2 </dev/zero 2>/dev/null |
		head -c $(($1 * 1048576)) >"$w/data-$2"
	tar -C "$w" --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -cf "$w.tar" "data-$2"
	d=$(sha256sum <"$w.tar" | cut -d' ' -f1)
	gzip -1 -n <"$w.tar" >"$w.gz"
	h=$(sha256sum <"$w.gz" | cut -d' ' -f1)
	echo "$h $d $(stat -c %s "$w.gz")"
	mv "$w.gz" "$L/blobs/sha256/$h"
	rm -rf "$w" "$w.tar"
}
put_blob() { # CONTENT: writes it, prints "DIGEST SIZE"
	local h
	h=$(printf '%s' "$1" | sha256sum | cut -d' ' -f1)
	printf '%s' "$1" >"$L/blobs/sha256/$h"
	echo "$h ${#1}"
}
layer "$base_mb" base >"$B/layer.base"
for i in $(seq $IMAGES); do
	for j in $(seq $OWN); do
		layer "$own_mb" "$i.$j" >"$B/layer.$i.$j" &
	done
	wait
done
spec=$B/spec.yaml
printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bench-install, version: "1"}\nimages:\n' >"$spec"
idx=""
for i in $(seq $IMAGES); do
	layers="" diffs=""
	for f in "$B/layer.base" $(for j in $(seq $OWN); do echo "$B/layer.$i.$j"; done); do
		read -r h d s <"$f"
		layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$h\",\"size\":$s}"
		diffs="$diffs${diffs:+,}\"sha256:$d\""
	done
	cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]},\"config\":{\"Cmd\":[\"/data-$i.1\"]}}"
	read -r ch cs < <(put_blob "$cfg")
	ms="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$ch\",\"size\":$cs},\"layers\":[$layers]}"
	read -r mh msz < <(put_blob "$ms")
	idx="$idx${idx:+,}{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mh\",\"size\":$msz,\"annotations\":{\"org.opencontainers.image.ref.name\":\"img$i\"}}"
	printf '  - {ref: "bench.local/install/img%s:1", from: "oci-layout:./src:img%s"}\n' "$i" "$i" >>"$spec"
done
echo "{\"schemaVersion\":2,\"manifests\":[$idx]}" >"$L/index.json"
ferry-build keygen -o "$B/k" >/dev/null
ferry-build build "$spec" -o "$B/b.tar" --key "$B/k.key" --cache "$B/cache" --quiet >/dev/null
rm -rf "$B/cache" "$L"
# the peer's starting point: the same images as an OCI layout on disk
X=$B/x
mkdir -p "$X"
tar -xf "$B/b.tar" -C "$X"
# "REF DIGEST" of every image, from the bundle
python3 - "$X/index.json" >"$B/refs" <<'EOF'
import json, sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    print(m["annotations"]["io.containerd.image.name"], m["digest"])
EOF
[ "$(wc -l <"$B/refs")" -eq $IMAGES ] || { cat "$B/refs"; echo "install: the bundle does not hold $IMAGES images"; exit 1; }
size=$(stat -c %s "$B/b.tar")
echo "install: bundle $((size / 1048576)) MiB, $IMAGES images, each a shared ${base_mb} MiB base layer + $OWN x ${own_mb} MiB gzip layers"

# warm: the page cache holds the bundle and the layout for every run
warm() { cat "$B/b.tar" >/dev/null; find "$X" -type f -exec cat {} + >/dev/null; sync; }

# --- containerd ------------------------------------------------------------
CTD_PID=""
start_containerd() { # a private containerd under $B/ctd; sets SOCK, CFG
	local d=$B/ctd
	mkdir -p "$d"
	SOCK=$d/containerd.sock CFG=$d/config.toml
	containerd_config "$d" "$SOCK" "$SN" >"$CFG"
	containerd --config "$CFG" >"$d/log" 2>&1 &
	CTD_PID=$!
	BENCH_PIDS="$BENCH_PIDS $CTD_PID"
	up ctr -a "$SOCK" version && return 0
	tail -n 5 "$d/log"
	echo "install: containerd cannot start here; skipped"
	exit 0
}
stop_containerd() {
	kill "$CTD_PID" 2>/dev/null || true
	wait "$CTD_PID" 2>/dev/null || true
	rm -rf "$B/ctd"
}
# check_containerd WHO: every image under its name with the bundle's digest,
# unpacked into the snapshotter
# (with LAZY=1: every image complete, nothing unpacked)
check_containerd() {
	local ls ref want
	ls=$(ctr -a "$SOCK" -n k8s.io images ls)
	while read -r ref want; do
		echo "$ls" | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$want" ||
			{ echo "$ls"; echo "install: after $1, containerd lacks $ref@$want"; exit 1; }
		ctr -a "$SOCK" -n k8s.io images check "name==$ref" | grep -q "complete" ||
			{ echo "install: after $1, $ref is incomplete"; exit 1; }
	done <"$B/refs"
	local snaps
	snaps=$(ctr -a "$SOCK" -n k8s.io snapshots --snapshotter "$SN" ls | tail -n +2 | wc -l)
	if [ "${LAZY:-0}" = 1 ]; then
		[ "$snaps" -eq 0 ] || { echo "install: after $1 (lazy), $snaps snapshots"; exit 1; }
	else
		[ "$snaps" -ge $((1 + IMAGES * OWN)) ] ||
			{ echo "install: after $1, the images were not unpacked"; exit 1; }
	fi
}

# own_hwm PID: polls the peak RSS (VmHWM, KiB) of PID, a running
# /usr/bin/time, and of the program it runs, without its children
# (GNU time's figure counts the ctr import children too), into $B/own
own_hwm() {
	local t=$1 c="" v hwm=0
	while [ -r "/proc/$t/status" ] && ! grep -q '^State:.*Z' "/proc/$t/status" 2>/dev/null; do
		[ -n "$c" ] || c=$(awk '{print $1}' "/proc/$t/task/$t/children" 2>/dev/null)
		if [ -n "$c" ]; then
			v=$(awk '/^VmHWM/ {print $2}' "/proc/$c/status" 2>/dev/null || true)
			[ -n "$v" ] && [ "$v" -gt "$hwm" ] && hwm=$v
		fi
		sleep 0.02
	done
	echo "$hwm" >"$B/own"
}
ferry_load() {
	local tp rc=0
	/usr/bin/time -o "$B/rss" -f %M ferry-install install "$B/b.tar" --pubkey "$B/k.pub" \
		--target "containerd:$SOCK" --containerd-config "$CFG" ${LAZY:+--unpack lazy} >"$B/ferry.out" 2>&1 &
	tp=$!
	own_hwm $tp
	wait $tp || rc=$?
	[ $rc -eq 0 ] || { cat "$B/ferry.out"; echo "install: ferry-install install failed"; return 1; }
}
peer_load_one() { # REF N: skopeo's and ctr's seconds go to $B/arch/N.secs
	local t0 t1 t2
	t0=$(now)
	skopeo copy -q --preserve-digests "oci:$X:$1" "oci-archive:$B/arch/$2.tar:$1" || return 1
	t1=$(now)
	ctr -a "$SOCK" -n k8s.io images import --snapshotter "$SN" ${LAZY:+--no-unpack} "$B/arch/$2.tar" >/dev/null || return 1
	t2=$(now)
	rm -f "$B/arch/$2.tar"
	echo "$t1 - $t0; $t2 - $t1" | bc -l | paste -sd' ' >"$B/arch/$2.secs"
}
peer_load_seq() {
	local ref d n=0
	rm -rf "$B/arch"
	mkdir -p "$B/arch"
	while read -r ref d; do
		n=$((n + 1))
		peer_load_one "$ref" $n || return 1
	done <"$B/refs"
}
peer_load_par() {
	local ref d n=0 pids="" p
	rm -rf "$B/arch"
	mkdir -p "$B/arch"
	while read -r ref d; do
		n=$((n + 1))
		peer_load_one "$ref" $n &
		pids="$pids $!"
	done <"$B/refs"
	for p in $pids; do wait "$p" || return 1; done
}
# timed SERVER WHO CMD: a fresh SERVER (containerd or registry), warm
# cache, time CMD (into ELAPSED), check what it left, stop the server. Not in
# $(...): the servers must stay known to this shell.
timed() {
	local srv=$1 who=$2 t0 t1 log
	shift 2
	case $srv in containerd) log=$B/ctd/log ;; *) log=$B/reg/log ;; esac
	"start_$srv"
	warm
	t0=$(now)
	"$@" || { tail -n 20 "$log"; echo "install: $who failed"; exit 1; }
	t1=$(now)
	"check_$srv" "$who"
	"stop_$srv"
	ELAPSED=$(echo "$t1 - $t0" | bc -l)
}

if part load; then
	best_fl=999999 best_sl=999999 best_pl=999999 rss_l=0 own_l=0
	for _ in $(seq "$RUNS"); do
		timed containerd "ferry-install install" ferry_load
		f=$ELAPSED
		r=$(cat "$B/rss")
		[ "$r" -gt "$rss_l" ] && rss_l=$r
		r=$(cat "$B/own")
		[ "$r" -gt "$own_l" ] && own_l=$r
		timed containerd "skopeo copy + ctr import" peer_load_seq
		s=$ELAPSED
		if [ "$(echo "$s < $best_sl" | bc)" = 1 ]; then # the split of the best run
			read -r sk_l ct_l < <(cat "$B"/arch/*.secs | awk '{a += $1; b += $2} END {print a, b}')
		fi
		timed containerd "skopeo copy + ctr import (parallel)" peer_load_par
		p=$ELAPSED
		best_fl=$(min "$f" "$best_fl") best_sl=$(min "$s" "$best_sl") best_pl=$(min "$p" "$best_pl")
	done
	grep -qE "images +done $IMAGES, skipped 0" "$B/ferry.out" || { cat "$B/ferry.out"; echo "install: ferry did not import $IMAGES images"; exit 1; }
	peer_l=$(min "$best_sl" "$best_pl")
	printf 'install: load into containerd (%s snapshotter, fresh state each run, best of %d): ferry %.2fs; skopeo copy + ctr import %.2fs image by image (skopeo %.2fs, ctr import %.2fs), %.2fs all at once\n' \
		"$SN" "$RUNS" "$best_fl" "$best_sl" "$sk_l" "$ct_l" "$best_pl"
	echo "install: load ratio (skopeo + ctr)/ferry = $(printf %.2f "$(ratio "$peer_l" "$best_fl")")x (goal >= 2x)"
	echo "install: load peak RSS $((rss_l / 1024)) MiB ($rss_l KiB, /usr/bin/time: ferry-install or its largest ctr import child); ferry-install alone $((own_l / 1024)) MiB (VmHWM)"

	# the unpack left for later, on both sides (not the same job as above)
	best_fz=999999 best_sz=999999 best_pz=999999
	export LAZY=1
	for _ in $(seq "$RUNS"); do
		timed containerd "ferry-install install --unpack lazy" ferry_load
		f=$ELAPSED
		timed containerd "skopeo copy + ctr import --no-unpack" peer_load_seq
		s=$ELAPSED
		timed containerd "skopeo copy + ctr import --no-unpack (parallel)" peer_load_par
		p=$ELAPSED
		best_fz=$(min "$f" "$best_fz") best_sz=$(min "$s" "$best_sz") best_pz=$(min "$p" "$best_pz")
	done
	unset LAZY
	grep -qE "images +done $IMAGES, skipped 0" "$B/ferry.out" || { cat "$B/ferry.out"; echo "install: ferry (lazy) did not import $IMAGES images"; exit 1; }
	peer_z=$(min "$best_sz" "$best_pz")
	printf 'install: load, unpack left for later (best of %d): ferry --unpack lazy %.2fs; skopeo copy + ctr import --no-unpack %.2fs image by image, %.2fs all at once\n' \
		"$RUNS" "$best_fz" "$best_sz" "$best_pz"
	echo "install: lazy ratio (skopeo + ctr --no-unpack)/(ferry --unpack lazy) = $(printf %.2f "$(ratio "$peer_z" "$best_fz")")x; against the eager peer $(printf %.2f "$(ratio "$peer_l" "$best_fz")")x (not the same job: no snapshot is made)"
fi

# --- docker-registry ---------------------------------------------------------
REG_PID=""
start_registry() { # sets REG (127.0.0.1:PORT), fresh storage
	local port
	port=$(free_port)
	REG=127.0.0.1:$port
	rm -rf "$B/reg"
	mkdir -p "$B/reg"
	cat >"$B/reg/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $B/reg/data}
  delete: {enabled: false}
http:
  addr: $REG
EOF
	docker-registry serve "$B/reg/config.yml" >"$B/reg/log" 2>&1 &
	REG_PID=$!
	BENCH_PIDS="$BENCH_PIDS $REG_PID"
	up curl -sf -o /dev/null "http://$REG/v2/" && return 0
	tail -n 5 "$B/reg/log"
	echo "install: docker-registry never answered"
	exit 1
}
stop_registry() {
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
	rm -rf "$B/reg"
}
check_registry() { # WHO: every image by tag, with the bundle's digest
	local ref want got
	while read -r ref want; do
		got=$(curl -sfI -H "Accept: application/vnd.oci.image.manifest.v1+json" \
			"http://$REG/v2/${ref%:*}/manifests/${ref##*:}" | tr -d '\r' |
			awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}')
		[ "$got" = "$want" ] || { echo "install: after $1, $REG/$ref is '$got', not $want"; exit 1; }
	done <"$B/refs"
}

reg_ticks() { awk '{print $14 + $15}' "/proc/$REG_PID/stat"; } # user + system
ferry_push() {
	local t0
	t0=$(reg_ticks)
	/usr/bin/time -o "$B/rss" -f "%M %U %S" ferry-install push "$B/b.tar" --pubkey "$B/k.pub" \
		--to "$REG" --plain-http >"$B/ferry.out" 2>&1 ||
		{ cat "$B/ferry.out"; echo "install: ferry-install push failed"; return 1; }
	echo "$(($(reg_ticks) - t0))" >"$B/regticks"
}
peer_push_one() { # REF
	skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$X:$1" "docker://$REG/$1"
}
peer_push_seq() {
	local ref d
	while read -r ref d; do peer_push_one "$ref" || return 1; done <"$B/refs"
}
peer_push_par() {
	local ref d pids="" p
	while read -r ref d; do
		peer_push_one "$ref" &
		pids="$pids $!"
	done <"$B/refs"
	for p in $pids; do wait "$p" || return 1; done
}

part push || exit 0
best_fp=999999 best_sp=999999 best_pp=999999 rss_p=0 cpu_note=""
for _ in $(seq "$RUNS"); do
	timed registry "ferry-install push" ferry_push
	f=$ELAPSED
	read -r r fu fs <"$B/rss"
	[ "$r" -gt "$rss_p" ] && rss_p=$r
	# where the best run's time went: CPU-seconds of ferry and of the
	# registry, and what they add up to on this machine's CPUs
	if [ "$(echo "$f < $best_fp" | bc)" = 1 ]; then
		fc=$(echo "$fu + $fs" | bc -l)
		regc=$(echo "$(cat "$B/regticks") / $(getconf CLK_TCK)" | bc -l)
		cpu_note=$(printf 'ferry %.2f CPU-s, docker-registry %.2f CPU-s; on %d CPUs that is at least %.2fs' \
			"$fc" "$regc" "$(nproc)" "$(echo "($fc + $regc) / $(nproc)" | bc -l)")
		cpu_note="$cpu_note; members hashed by the idle-time hashers: $(sed -n 's/^verified \([0-9]*\) members .* while pushing, \([0-9]*\) of them in idle time$/\2 of \1/p' "$B/ferry.out")"
	fi
	timed registry "skopeo copy" peer_push_seq
	s=$ELAPSED
	timed registry "skopeo copy (parallel)" peer_push_par
	p=$ELAPSED
	best_fp=$(min "$f" "$best_fp") best_sp=$(min "$s" "$best_sp") best_pp=$(min "$p" "$best_pp")
done
grep -qE "pushed $IMAGES images" "$B/ferry.out" || { cat "$B/ferry.out"; echo "install: ferry did not push $IMAGES images"; exit 1; }
peer_p=$(min "$best_sp" "$best_pp")
printf 'install: push into docker-registry (plain HTTP, fresh storage each run, best of %d): ferry %.2fs, skopeo copy %.2fs image by image, %.2fs all at once\n' \
	"$RUNS" "$best_fp" "$best_sp" "$best_pp"
echo "install: push ratio skopeo/ferry = $(printf %.2f "$(ratio "$peer_p" "$best_fp")")x (goal >= 2x)"
echo "install: push CPU in ferry's best run: $cpu_note"
echo "install: push peak RSS $((rss_p / 1024)) MiB ($rss_p KiB)"
