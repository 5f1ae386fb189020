# --json prints events with fields, and docs/json-events.md is their schema:
# every stdout line of `ferry-build build --json` parses as a JSON object
# whose "event" is one the doc's table lists, with every field the table
# lists (types checked) and no field it does not list. Runs, through a
# fault proxy: a build killed mid-blob, a cold build (a 429 gives "retry",
# the killed blob "resume", a slow one "progress"; --lock gives "lock"), a
# warm build, a build against a moved tag ("error", code 2) and one of a
# missing image ("error", code 1). Then `ferry-install install --json`
# against its own table: a load archive (--target docker --archive-out), a
# --dry-run of a kind plan (commands not run, a warning), and a tampered
# bundle ("error", code 2). The events each run must show are asserted
# too, so an event that vanishes or turns into a sentence fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"

DOC=${FERRY_JSON_DOC:-$TOP/docs/json-events.md}
cat >"$T/check.py" <<'PY'
# check.py DOC SECTION EVENTS_FILE [REQUIRED_EVENT...]
import json, re, sys
doc, section, path, required = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
schema, on = {}, False
for l in open(doc, encoding="utf-8"):
    if l.startswith("## "):
        on = l[3:].strip() == section
        continue
    m = re.match(r"\|\s*`([a-z_]+)`\s*\|([^|]*)\|", l)
    if on and m:
        fields = re.findall(r"`([a-z_0-9]+)(\??)`\s+(string|int|number|bool|object)", m.group(2))
        assert fields, "no fields parsed for %s in %s" % (m.group(1), doc)
        schema[m.group(1)] = {f: (opt == "?", t) for f, opt, t in fields}
assert schema, "no table under '## %s' in %s" % (section, doc)
types = {"string": (str,), "int": (int,), "number": (int, float), "bool": (bool,), "object": (dict,)}
seen = []
for n, l in enumerate(open(path, encoding="utf-8"), 1):
    where = "%s:%d" % (path, n)
    e = json.loads(l)
    assert isinstance(e, dict) and isinstance(e.get("event"), str), "%s: no event: %s" % (where, l)
    ev = e["event"]
    assert ev in schema, "%s: event %r is not in %s (%s)" % (where, ev, doc, sorted(schema))
    for f, (opt, t) in schema[ev].items():
        if f not in e:
            assert opt, "%s: %s lacks %r: %s" % (where, ev, f, l)
            continue
        ok = isinstance(e[f], types[t]) and not (t != "bool" and isinstance(e[f], bool))
        assert ok, "%s: %s.%s is not %s: %s" % (where, ev, f, t, l)
    extra = set(e) - set(schema[ev]) - {"event"}
    assert not extra, "%s: %s has fields the doc does not list: %s" % (where, ev, sorted(extra))
    seen.append(ev)
for r in required:
    assert r in seen, "%s: no %r event (saw %s)" % (path, r, sorted(set(seen)))
print("  %s: %d events (%s) match the schema" % (path.rsplit("/", 1)[-1], len(seen), ", ".join(sorted(set(seen)))))
PY
check() { python3 "$T/check.py" "$DOC" "ferry-build build --json" "$@" || fail "$1 does not match $DOC"; }
check_install() { python3 "$T/check.py" "$DOC" "ferry-install install --json" "$@" || fail "$1 does not match $DOC"; }

pull_setup
rand_file "$W/big.bin" 3000000 9
make_image "$W/L" big "$W/big.bin"
push "$W/L:a" library/app-a:1
push "$W/L:big" library/big:1

PPORT=$(free_port)
RPORT=$(free_port)
RULES=$W/rules.json
BIG=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$REG_PORT/v2/library/big/manifests/1" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
[ -n "$BIG" ] || fail "the big image is not served"
# rules ACTION-JSON...
rules() { python3 -c 'import json,sys; print(json.dumps({"faults": [json.loads(a) for a in sys.argv[1:]]}))' "$@" >"$RULES"; }
# first a build killed while the big blob comes slowly: its bytes stay in
# the cache, and the next build resumes them
rules "{\"match\": \"^GET /v2/.*/blobs/$BIG\", \"do\": \"slow\", \"rate\": 400000}"
python3 "$(dirname "$0")/fault_proxy.py" --listen "127.0.0.1:$PPORT" --redirect "127.0.0.1:$RPORT" \
	--route "/=127.0.0.1:$REG_PORT" --rules "$RULES" --log "$W/proxy.log" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$PPORT"
SPEC_ENDPOINT=127.0.0.1:$PPORT spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - big:1\n' >>"$W/spec.yaml"

fb() { ferry-build build "$W/spec.yaml" -o "$W/$1.tar" --key "$W/k.key" --cache "$W/cache" --json "${@:2}"; }
# (the same output as the next build: its temp bundle holds the bytes)
ferry-build build "$W/spec.yaml" -o "$W/cold.tar" --key "$W/k.key" --cache "$W/cache" --json >"$W/killed.json" 2>&1 &
bpid=$!
part=$W/cache/tmp/${BIG#sha256:}.partial
for _ in $(seq 200); do
	[ -f "$part" ] && [ "$(stat -c %s "$part")" -ge 600000 ] && break
	sleep 0.05
done
kill -9 "$bpid"
wait "$bpid" 2>/dev/null || true
[ "$(stat -c %s "$part")" -ge 600000 ] || fail "the killed build left no partial blob"
# then one 429 on the big blob ("retry"); it resumes ("resume") and
# comes slowly ("progress")
rules "{\"match\": \"^GET /v2/.*/blobs/$BIG\", \"do\": \"status\", \"status\": 429, \"headers\": {\"Retry-After\": \"1\"}, \"count\": 1}" \
	"{\"match\": \"^GET /v2/.*/blobs/$BIG\", \"do\": \"slow\", \"rate\": 1000000}"
fb cold --lock >"$W/cold.json" 2>"$W/cold.err" || fail "cold build: $(cat "$W/cold.err")"
check "$W/cold.json" resolve blob_start blob_done retry resume progress lock summary wrote
tail -n 1 "$W/cold.json" | grep -q '^{"event":"wrote"' || fail "the last event is not wrote"
# the resolve events name the references and their digests
python3 - "$W/cold.json" "$(manifest_digest library/big:1)" <<'PY' || fail "resolve events are wrong"
import json, sys
r = {e["ref"]: e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "resolve"}
assert set(r) == {"docker.io/library/app-a:1", "docker.io/library/big:1"}, r
assert r["docker.io/library/big:1"]["digest"] == sys.argv[2], r
assert all(e["blobs"] >= 2 for e in r.values()), r
PY
echo '{}' >"$RULES"
fb warm --locked >"$W/warm.json" 2>"$W/warm.err" || fail "warm build: $(cat "$W/warm.err")"
check "$W/warm.json" resolve summary wrote
grep -q '"blob_start"' "$W/warm.json" && fail "the warm build started a download"
# a tag that moved since the lock: error, exit 2 (verification failed)
push "$W/L:b" library/app-a:1
rc=0
fb moved --locked >"$W/moved.json" 2>"$W/moved.err" || rc=$?
[ "$rc" = 2 ] || fail "a build against a moved tag exited $rc: $(cat "$W/moved.err")"
check "$W/moved.json" error
tail -n 1 "$W/moved.json" | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e["event"]=="error" and e["code"]==2 and "lock" in e["message"], e' ||
	fail "the last event of the moved-tag build is not error/2"
# an image the registry lacks: error, exit 1
printf '  - missing:1\n' >>"$W/spec.yaml"
rc=0
fb missing >"$W/missing.json" 2>"$W/missing.err" || rc=$?
[ "$rc" = 1 ] || fail "a build of a missing image exited $rc: $(cat "$W/missing.err")"
check "$W/missing.json" error
tail -n 1 "$W/missing.json" | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e["event"]=="error" and e["code"]==1, e' ||
	fail "the last event of the missing-image build is not error/1"

# --- ferry-install install --json: the load archive of the cold bundle
# (no cluster needed), a dry run, and a tampered bundle
ferry-install install "$W/cold.tar" --pubkey "$W/k.pub" --target docker --archive-out "$W/load.tar" \
	--json >"$W/install.json" 2>"$W/install.err" || fail "install --json: $(cat "$W/install.err")"
[ -s "$W/load.tar" ] || fail "install --json wrote no archive"
check_install "$W/install.json" start step report done
python3 - "$W/install.json" "$W/cold.tar" <<'PY' || fail "install --json events are wrong"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev[0] == {"event": "start", "bundle": sys.argv[2], "target": "docker", "mode": "default", "dry_run": False}, ev[0]
assert ev[-1]["event"] == "done" and ev[-1]["dry_run"] is False, ev[-1]
rep = {e["step"]: e for e in ev if e["event"] == "report"}
assert list(rep) == ["verify", "images", "manifests", "models"], rep
assert rep["verify"]["ran"] and rep["verify"]["done"] > 0 and rep["verify"]["bytes"] > 0, rep["verify"]
assert rep["images"]["ran"] and rep["images"]["done"] == 2, rep["images"]
PY
# (ctr and containerd here find no containerd at once: the dry run assumes
# none, with a warning)
mkdir -p "$T/nobin"
for p in ctr containerd; do printf '#!/bin/sh\necho "%s: no containerd here" >&2\nexit 1\n' $p >"$T/nobin/$p"; done
chmod +x "$T/nobin/"*
PATH="$T/nobin:$PATH" ferry-install install "$W/cold.tar" --pubkey "$W/k.pub" --target kind:demo --nodes demo-control-plane \
	--node-runner local --no-apply --dry-run --json >"$W/dry.json" 2>"$W/dry.err" ||
	fail "install --dry-run --json: $(cat "$W/dry.err")"
check_install "$W/dry.json" start step command warning report done
grep -q '"event":"command".*"run":false' "$W/dry.json" || fail "the dry run said no command it would run"
# a bundle whose bytes changed: error, code 2
cp "$W/cold.tar" "$W/bad.tar"
python3 - "$W/bad.tar" <<'PY'
import sys
f = open(sys.argv[1], "r+b"); data = f.read()
f.seek(len(data) // 2); b = f.read(1); f.seek(len(data) // 2); f.write(bytes([b[0] ^ 1]))
PY
rc=0
ferry-install install "$W/bad.tar" --pubkey "$W/k.pub" --target docker --archive-out "$W/bad-load.tar" \
	--json >"$W/bad-install.json" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || fail "install of a tampered bundle exited $rc"
check_install "$W/bad-install.json" start error
tail -n 1 "$W/bad-install.json" | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e["event"]=="error" and e["code"]==2, e' ||
	fail "the last event of a failed install is not error/2"
echo "json_events: every build --json and install --json line matches docs/json-events.md"
