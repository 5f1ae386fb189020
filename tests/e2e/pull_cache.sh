# A second build of an unchanged spec with a warm cache transfers no blob
# and no manifest: only the /v2/ ping, one HEAD per tag and one tag
# listing per repository and one referrers API probe per registry (what is
# attached: docs/supply-chain.md), asserted
# from the registry's access log. --json gives one event per line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"

pull_setup
push "$W/L:a" library/app-a:1
push "$W/L:b" library/app-b:1
push "$W/L:multi" library/multi:1 --all
spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - app-b:1\n  - ref: multi:1\n    platforms: [all]\n' >>"$W/spec.yaml"

ferry-build build "$W/spec.yaml" -o "$W/b1.tar" --key "$W/k.key" --cache "$W/cache" 2>"$W/err1" ||
	fail "cold build: $(cat "$W/err1")"
cold=$(ferry_requests "$REG_LOG" | wc -l)
ferry_requests "$REG_LOG" | grep -q '^GET /v2/library/[^ ]*/blobs/' || fail "cold build fetched no blob"

ferry-build build "$W/spec.yaml" -o "$W/b2.tar" --key "$W/k.key" --cache "$W/cache" --json >"$W/events" 2>"$W/err2" ||
	fail "warm build: $(cat "$W/err2")"
ferry_requests "$REG_LOG" | tail -n +$((cold + 1)) >"$W/warm"
echo "warm build requests:"
cat "$W/warm"
grep -v -E '^(HEAD /v2/library/(app-a|app-b|multi)/manifests/1 200|GET /v2/library/(app-a|app-b|multi)/tags/list 200|GET /v2/library/(app-a|app-b|multi)/referrers/sha256:[0-9a-f]{64} 404|GET /v2/ 200) ' "$W/warm" &&
	fail "the warm build sent more than pings, HEADs, tag listings and a referrers probe"
[ "$(grep -c '^HEAD' "$W/warm")" = 3 ] || fail "expected 3 HEADs"
[ "$(grep -c '^GET /v2/library/[^ ]*/tags/list' "$W/warm")" = 3 ] || fail "expected 3 tag listings"
# docker-registry 2.8 has no referrers API: asked once, for the first image
[ "$(grep -c '^GET /v2/library/[^ ]*/referrers/' "$W/warm")" = 1 ] || fail "expected 1 referrers API probe"
bytes=$(awk '$1=="GET" && $2 ~ /blobs/ {s+=$4} END {print s+0}' "$W/warm")
[ "$bytes" = 0 ] || fail "warm build transferred $bytes blob bytes"
cmp "$W/b1.tar" "$W/b2.tar" || fail "the warm bundle differs from the cold one"

# --json: every stdout line is a JSON object; a summary and a final 'wrote'
python3 - "$W/events" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in ev]
assert kinds[-1] == "wrote", kinds
s = [e for e in ev if e["event"] == "summary"][0]
assert s["bytes_fetched"] == 0 and s["blobs_fetched"] == 0 and s["manifest_gets"] == 0, s
assert s["blobs_reused"] == s["blobs"] > 0 and s["manifest_heads"] == 3, s
PY
# plain progress off a TTY, nothing with --quiet
grep -q '^pulled 3 images' "$W/err1" || fail "no summary line: $(cat "$W/err1")"
ferry-build build "$W/spec.yaml" -o "$W/b3.tar" --key "$W/k.key" --cache "$W/cache" --quiet >"$W/q.out" 2>&1
[ ! -s "$W/q.out" ] || fail "--quiet printed: $(cat "$W/q.out")"
# two builds sharing one cold cache at once: both succeed, same bundle
ferry-build build "$W/spec.yaml" -o "$W/c1.tar" --key "$W/k.key" --cache "$W/shared" --jobs 2 >/dev/null 2>"$W/c1.err" &
p1=$!
ferry-build build "$W/spec.yaml" -o "$W/c2.tar" --key "$W/k.key" --cache "$W/shared" --jobs 2 >/dev/null 2>"$W/c2.err" &
p2=$!
wait "$p1" || fail "concurrent build 1: $(cat "$W/c1.err")"
wait "$p2" || fail "concurrent build 2: $(cat "$W/c2.err")"
cmp "$W/c1.tar" "$W/b1.tar" && cmp "$W/c2.tar" "$W/b1.tar" || fail "concurrent bundles differ"
echo "pull_cache: ok"
