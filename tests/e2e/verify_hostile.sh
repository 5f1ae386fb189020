# The strict scanner, proven against independent tar code (issue 14); every
# case also as a volume set of three parts (issue 16).
#
# A good signed bundle is made with ferry-build; tests/e2e/hostile_bundles.py
# reads it with its own raw 512-byte header parser and writes hostile
# variants by re-emitting raw ustar/pax/GNU headers (no libarchive, never
# ferry's writer, never re-signed: SHA256SUMS and SHA256SUMS.sig stay
# byte-identical). Each variant must be refused by `ferry-install verify`
# with exit 2 and a message on stderr naming the member concerned.
#
# The invariant, for every bundle ferry accepts (the demo-like bundle, one
# with >100-byte names, one with many small members, and two re-emitted
# controls): GNU tar and Python's tarfile list exactly the members in
# SHA256SUMS plus SHA256SUMS and SHA256SUMS.sig, all regular files;
# `sha256sum -c` passes on GNU tar's extraction; and the bytes ferry hands
# out (the load archive, placed model files, manifests given to kubectl,
# blobs served over HTTP on 127.0.0.1) are exactly the bytes GNU tar
# extracted.
#
# The issue's attack (pax SCHILY.realsize=916 on manifests/02-workload.yaml,
# a ClusterRoleBinding in its padding) also goes through `install --dry-run`
# and `serve`: refused, and `pwned` is never planned.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci python3 tar sha256sum curl cmp

HB=$TOP/tests/e2e/hostile_bundles.py
hb() { python3 "$HB" "$@"; }
W=$T/w
S=$W/src
mkdir -p "$S/demo/images" "$W/bin"
cp "$TOP/tests/fixtures/kubectl-standin" "$W/bin/kubectl"
export PATH="$W/bin:$PATH"

# --- the bundles ferry builds and accepts
ferry-build keygen -o "$W/k" >/dev/null
PUB=$W/k.pub
build() { # SPEC OUT
	ferry-build build "$1" -o "$2" --key "$W/k.key" --cache "$W/cache" >"$W/build.log" 2>&1 ||
		{ cat "$W/build.log"; fail "ferry-build $1"; }
}

# 1. the demo's layout (bundles/demo.yaml): its manifests and model, two
#    small images made with umoci under the demo's references
cp -r "$TOP/bundles/demo/manifests" "$TOP/bundles/demo/models" "$S/demo/"
cp "$TOP/bundles/demo.yaml" "$S/demo.yaml"
echo "hello from an air-gapped lab" >"$S/index.html"
echo "a busybox stand-in" >"$S/busybox"
make_image "$S/demo/images/hello" 1.0 "$S/index.html"
make_image "$S/demo/images/busybox" 1.36 "$S/busybox"
B=$W/demo.tar
build "$S/demo.yaml" "$B"

# 2. names longer than 100 bytes: one whose last component alone is over
#    100 (a pax path record), one that fits ustar's prefix + name
mkdir -p "$S/long"
L1=$S/long/$(printf 'a%.0s' $(seq 110)).bin
L2=$S/long/$(printf 'b%.0s' $(seq 60)).bin
echo one >"$L1"
echo two >"$L2"
cat >"$S/long.yaml" <<EOF
apiVersion: ferry/v1
kind: Bundle
metadata: {name: long}
models:
  - {name: m-$(printf 'c%.0s' $(seq 50)), version: "1", path: "$L1"}
  - {name: n-$(printf 'd%.0s' $(seq 50)), version: "1", path: "$L2"}
EOF
LONG=$W/long.tar
build "$S/long.yaml" "$LONG"

# 3. many small members: 150 model files of 0..4097 bytes (empty members,
#    exact block multiples, one byte over)
mkdir -p "$S/many"
python3 - "$S/many" <<'EOF'
import sys
sizes = [0, 1, 2, 100, 511, 512, 513, 1023, 1024, 1025, 1536, 4095, 4096, 4097]
for i in range(150):
    n = sizes[i % len(sizes)]
    open("%s/f%03d.bin" % (sys.argv[1], i), "wb").write(bytes((i + j) % 251 for j in range(n)))
EOF
cat >"$S/many.yaml" <<EOF
apiVersion: ferry/v1
kind: Bundle
metadata: {name: many}
models:
  - {name: many, version: "1", path: "$S/many"}
EOF
MANY=$W/many.tar
build "$S/many.yaml" "$MANY"

# --- the hostile variants (and two accepted re-emissions). hostile_bundles.py
#     checks each against its own reference reading of the rules (strict()):
#     refused, naming one of the expected members; the controls accepted.
V=$W/v
hb make "$B" "$LONG" "$V"
[ "$(wc -l <"$V/cases.tsv")" -ge 60 ] || fail "hostile_bundles.py made only $(wc -l <"$V/cases.tsv") cases"
cmp -s "$B" "$V/ok-identity.tar" || fail "the re-emitted bundle is not byte-identical to ferry's"

# names_in TEXT NAMES: the first of the '|'-separated NAMES that TEXT holds.
names_in() {
	IFS='|' read -ra alts <<<"$2"
	for n in "${alts[@]}"; do
		case $1 in *"$n"*) echo "$n" && return 0 ;; esac
	done
}

# check_accepted BUNDLE LABEL: the invariant for a bundle ferry accepts.
check_accepted() {
	a=$1 label=$2 d=$W/acc-$2
	mkdir -p "$d/x" "$d/load"
	ferry-install verify "$a" --pubkey "$PUB" >"$d/verify.out" 2>&1 ||
		fail "$label: verify refused a bundle it must accept: $(cat "$d/verify.out")"
	hb oracle "$a" >/dev/null || fail "$label: the reference reading of the rules refuses it"
	# the names SHA256SUMS lists, plus the two signed members
	hb sums "$a" >"$d/listed"
	{ cat "$d/listed"; printf 'SHA256SUMS\nSHA256SUMS.sig\n'; } | LC_ALL=C sort >"$d/want"
	n=$(wc -l <"$d/listed")
	# GNU tar's listing: regular files only, exactly those names, none twice
	tar -tvf "$a" >"$d/tv" 2>"$d/tar.err" || fail "$label: tar -tvf: $(cat "$d/tar.err")"
	[ ! -s "$d/tar.err" ] || fail "$label: tar -tvf warned: $(cat "$d/tar.err")"
	[ "$(cut -c1 "$d/tv" | sort -u)" = "-" ] || fail "$label: tar -tvf lists a non-regular member: $(grep -v '^-' "$d/tv")"
	tar -tf "$a" | LC_ALL=C sort >"$d/got"
	cmp -s "$d/want" "$d/got" || fail "$label: GNU tar lists other members than SHA256SUMS: $(diff "$d/want" "$d/got")"
	# Python's tarfile: the same names, regular, and its bytes hash to SHA256SUMS
	hb tarfile-check "$a" >/dev/null
	# GNU tar's extraction: exactly those files, and sha256sum -c passes
	tar -xf "$a" -C "$d/x" 2>"$d/tar.err" || fail "$label: tar -xf: $(cat "$d/tar.err")"
	[ ! -s "$d/tar.err" ] || fail "$label: tar -xf warned: $(cat "$d/tar.err")"
	(cd "$d/x" && find . -type f | sed 's|^\./||' | LC_ALL=C sort) >"$d/got"
	cmp -s "$d/want" "$d/got" || fail "$label: GNU tar extracted other files: $(diff "$d/want" "$d/got")"
	[ -z "$(find "$d/x" ! -type f ! -type d)" ] || fail "$label: tar extracted something not a file"
	(cd "$d/x" && sha256sum -c --strict SHA256SUMS) >"$d/sums.out" 2>&1 ||
		fail "$label: sha256sum -c on GNU tar's extraction: $(grep -v ': OK$' "$d/sums.out")"
	[ "$(grep -c ': OK$' "$d/sums.out")" = "$n" ] || fail "$label: sha256sum -c checked fewer than $n files"

	# what ferry hands out is what GNU tar extracted: the load archive, the
	# model files it places, the manifests it gives kubectl (the stand-in)
	export KUBECTL_STANDIN_LOG=$d/kubectl.log
	ferry-install install "$a" --pubkey "$PUB" --target kind:demo --archive-out "$d/load.tar" --apply \
		--models-dir "$d/models" --backoff 0.05 >"$d/install.out" 2>&1 ||
		fail "$label: install: $(cat "$d/install.out")"
	tar -xf "$d/load.tar" -C "$d/load"
	nb=0
	for f in "$d/load/blobs/sha256/"*; do
		h=$(basename "$f")
		cmp -s "$f" "$d/x/blobs/sha256/$h" || fail "$label: install's load archive has other bytes for blob $h"
		nb=$((nb + 1))
	done
	[ "$nb" -gt 0 ] || fail "$label: the load archive holds no blob"
	nm=0
	while IFS= read -r m; do
		case $m in models/*) ;; *) continue ;; esac
		cmp -s "$d/x/$m" "$d/models/${m#models/}" || fail "$label: the placed $m differs from GNU tar's"
		nm=$((nm + 1))
	done <"$d/listed"
	[ "$nm" -gt 0 ] || fail "$label: no model file placed"
	python3 - "$d" <<'EOF' || fail "$label: the manifests given to kubectl differ from GNU tar's"
import glob, os, sys
d = sys.argv[1]
files = sorted(glob.glob(d + "/x/manifests/*"))
applied = [open(f, "rb").read() for f in sorted(glob.glob(d + "/kubectl.log.d/*.stdin"))]
# each manifest here is one document: ferry gives kubectl "---\n" + its bytes
want = sorted(b"---\n" + open(f, "rb").read() for f in files)
if sorted(applied) != want:
    sys.exit("applied %d inputs, %d manifests" % (len(applied), len(files)))
EOF
	unset KUBECTL_STANDIN_LOG
	# serve: every manifest and blob reachable from index.json, by HTTP
	serve_start "serve-$label" "$a" --pubkey "$PUB" --index-dir "$d/idx"
	hb blob-urls "$d/x" >"$d/urls"
	ns=0
	while read -r repo dig kind; do
		curl -sf -o "$d/served" "$SERVE_URL/v2/$repo/$kind/$dig" || fail "$label: GET /v2/$repo/$kind/$dig"
		cmp -s "$d/served" "$d/x/blobs/sha256/${dig#sha256:}" || fail "$label: served $dig differs from GNU tar's"
		ns=$((ns + 1))
	done <"$d/urls"
	serve_stop "$SERVE_PID" "serve-$label"
	[ "$ns" -gt 0 ] || fail "$label: nothing served"
	echo "accepted  $label: $n listed members; GNU tar, tarfile and sha256sum -c agree;" \
		"$nb load-archive blobs, $nm models, $(find "$d/kubectl.log.d" -name "*.stdin" 2>/dev/null | wc -l) kubectl inputs, $ns served: same bytes"
}

echo "== bundles ferry accepts: the invariant"
check_accepted "$B" demo
check_accepted "$LONG" long-names
check_accepted "$MANY" many-small
# ok-identity is byte-identical to the demo bundle (checked above): verify only
ferry-install verify "$V/ok-identity.tar" --pubkey "$PUB" >/dev/null || fail "the re-emitted bundle is refused"
check_accepted "$V/ok-zeros-after-end.tar" zeros-after-end
grep -q '^ok-identity	' "$V/accepted.tsv" && grep -q '^ok-zeros-after-end	' "$V/accepted.tsv" ||
	fail "hostile_bundles.py made other controls: $(cut -f1 "$V/accepted.tsv")"

# split_parts FILE PREFIX: FILE as PREFIX.000, .001, .002 (equal parts,
# the last no larger), as `ferry-build build --volume-size` would cut it
split_parts() {
	mkdir -p "$(dirname "$2")"
	rm -f "$2".0*
	sz=$(stat -c %s "$1")
	split -b $(((sz + 2) / 3)) -d -a 3 "$1" "$2."
}

echo "== bundles ferry accepts, as volume sets"
for a in "$B" "$V/ok-zeros-after-end.tar"; do
	split_parts "$a" "$W/parts/ok.tar"
	ferry-install verify "$W/parts/ok.tar" --pubkey "$PUB" >/dev/null ||
		fail "$(basename "$a") in three parts is refused"
	cat "$W/parts/ok.tar".0* | cmp -s - "$a" || fail "split_parts lost bytes"
	echo "accepted  $(basename "$a") in three parts"
done

echo "== hostile bundles (SHA256SUMS and SHA256SUMS.sig unchanged): exit 2, the member named on stderr"
SIGEND=$(hb sigend "$B")
SIGEND_LONG=$(hb sigend "$LONG")
bad="" total=0
while IFS=$'\t' read -r case file names what; do
	total=$((total + 1))
	case $case in long-*) base=$LONG ;; *) base=$B ;; esac
	# the attacker has no key: the first two members are ferry's bytes
	case $case in long-*) n=$SIGEND_LONG ;; *) n=$SIGEND ;; esac
	cmp -s -n "$n" "$base" "$file" || fail "$case: SHA256SUMS or SHA256SUMS.sig changed"
	set +e
	ferry-install verify "$file" --pubkey "$PUB" >"$W/v.out" 2>"$W/v.err"
	rc=$?
	set -e
	msg=$(cat "$W/v.err")
	msg=${msg//"$file"/BUNDLE} # the bundle's own path does not count as naming a member
	named=$(names_in "$msg" "$names")
	first=$(printf '%s\n' "$msg" | head -n 1)
	if [ "$rc" = 2 ] && [ -n "$named" ]; then
		echo "ok      $case: exit 2, names '$named' -- $what"
		echo "          $first"
	else
		bad="$bad $case"
		echo "NOT OK  $case: exit $rc, wanted exit 2 naming '${names//|/' or '}' -- $what"
		[ -n "$first" ] && echo "          $first"
	fi
	# the same bytes as a volume set of three parts (docs/bundle-format.md,
	# "Volumes"): refused the same way
	split_parts "$file" "$W/parts/$case.tar"
	set +e
	ferry-install verify "$W/parts/$case.tar" --pubkey "$PUB" >"$W/v.out" 2>"$W/v.err"
	rc=$?
	set -e
	msg=$(cat "$W/v.err")
	msg=${msg//"$W/parts/$case.tar"/BUNDLE}
	named=$(names_in "$msg" "$names")
	if [ "$rc" = 2 ] && [ -n "$named" ]; then
		echo "ok      $case in parts: exit 2, names '$named'"
	else
		bad="$bad $case-in-parts"
		echo "NOT OK  $case in parts: exit $rc, wanted exit 2 naming '${names//|/' or '}'"
		echo "          $(printf '%s\n' "$msg" | head -n 1)"
	fi
done <"$V/cases.tsv"

echo "== the issue's bundle: install --dry-run and serve refuse it, nothing plans pwned"
I=$V/schily-realsize.tar
# it is an attack stock tools do not see: GNU tar, sha256sum -c and tarfile pass
mkdir -p "$W/issue/x"
tar -xf "$I" -C "$W/issue/x" 2>/dev/null
(cd "$W/issue/x" && sha256sum -c --strict --quiet SHA256SUMS) || fail "GNU tar's view of the issue bundle is not the signed one"
grep -rq pwned "$W/issue/x" && fail "GNU tar extracted the hidden ClusterRoleBinding"
hb tarfile-check "$I" >/dev/null
export KUBECTL_STANDIN_LOG=$W/issue/kubectl.log
set +e
ferry-install install "$I" --pubkey "$PUB" --target kind:demo --archive-out "$W/issue/load.tar" --apply \
	--dry-run >"$W/issue/install.out" 2>&1
rc=$?
set -e
unset KUBECTL_STANDIN_LOG
if [ "$rc" = 2 ]; then
	echo "ok      install --dry-run: exit 2"
else
	bad="$bad install-dry-run"
	echo "NOT OK  install --dry-run: exit $rc, wanted 2"
fi
if grep -q pwned "$W/issue/install.out"; then
	bad="$bad install-plans-pwned"
	echo "NOT OK  install --dry-run plans: $(grep pwned "$W/issue/install.out" | head -n 1)"
else
	echo "ok      install --dry-run: no plan line mentions pwned"
fi
grep -rqs pwned "$W/issue/kubectl.log"* && fail "kubectl was given the hidden ClusterRoleBinding"
# serve --verify=full: refused at start (exit 2), never ready
rm -f "$W/issue/ready"
ferry-install serve "$I" --pubkey "$PUB" --listen 127.0.0.1:0 --verify=full --index-dir "$W/issue/idx" \
	--ready-file "$W/issue/ready" >"$W/issue/serve.out" 2>&1 &
spid=$!
FERRY_PIDS="$FERRY_PIDS $spid"
for _ in $(seq 100); do
	[ -s "$W/issue/ready" ] && break
	kill -0 "$spid" 2>/dev/null || break
	sleep 0.1
done
if [ -s "$W/issue/ready" ]; then
	kill "$spid"
	wait "$spid" 2>/dev/null || true
	bad="$bad serve-full"
	echo "NOT OK  serve --verify=full: started serving the issue's bundle"
else
	set +e
	wait "$spid"
	rc=$?
	set -e
	if [ "$rc" = 2 ]; then
		echo "ok      serve --verify=full: exit 2"
	else
		bad="$bad serve-full"
		echo "NOT OK  serve --verify=full: exit $rc, wanted 2: $(tail -n 1 "$W/issue/serve.out")"
	fi
fi

[ -z "$bad" ] || fail "$(echo "$bad" | wc -w) of $((total + 3)) checks on hostile bundles failed:$bad"
echo "verify_hostile: ok ($total hostile bundles refused; 4 accepted bundles meet the invariant)"
