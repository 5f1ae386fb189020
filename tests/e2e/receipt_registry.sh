#!/bin/bash
# receipt --registry (docs/bundle-format.md "Receipts"), inside a network
# namespace with only loopback. The delta setup (deltas_lib.bash: an
# upstream docker-registry, base.tar, its receipt from --bundle and a delta
# built against it); base.tar is pushed (`ferry-install push`) into a lab
# docker-registry with htpasswd auth under the prefix lab/, next to an
# image outside it. The receipt of 127.0.0.1:PORT/lab lists the bundle's
# refs and manifest digests and exactly the base's blobs with their sizes
# (not the outside image's); a delta built against it leaves out the same
# blobs as the delta built against the --bundle receipt. Without
# credentials, and with a prefix that holds nothing, it fails clearly and
# writes nothing. A registry that pages its catalog and tags (a python
# stub) gives every repository under the prefix and every tag, an index's
# children too (one it lacks skipped). Hostile registries (python stubs on loopback): a catalog
# that never ends, a Link that loops, a Link to another origin, endless
# tags and a name that is no repository path are each refused by a cap or
# a check, naming the registry.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need umoci skopeo curl jq python3 docker-registry htpasswd
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/deltas_lib.bash"
assert_airgap

deltas_setup

# --- the lab registry, with htpasswd auth
port=$(free_port)
LAB=127.0.0.1:$port
mkdir -p "$T/lab"
htpasswd -Bbn ferry s3cret >"$T/lab/htpasswd"
cat >"$T/lab/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $T/lab/data
http:
  addr: $LAB
  secret: ferry-e2e
auth:
  htpasswd:
    realm: ferry
    path: $T/lab/htpasswd
EOF
docker-registry serve "$T/lab/config.yml" >"$T/lab/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$port"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$LAB" "$(printf ferry:s3cret | base64)" >"$T/auth.json"
export REGISTRY_AUTH_FILE=$T/auth.json

ferry-install push "$W/base.tar" --pubkey "$PUB" --to "$LAB/lab" --plain-http >/dev/null 2>"$W/err" ||
	fail "push: $(cat "$W/err")"
# an image outside the prefix: not part of the receipt
skopeo copy -q --dest-tls-verify=false --dest-creds ferry:s3cret "oci:$W/L:other" \
	"docker://$LAB/elsewhere/other:1"
other_layer=$(skopeo inspect --raw --tls-verify=false --creds ferry:s3cret \
	"docker://$LAB/elsewhere/other:1" | jq -r '.layers[0].digest')

RR=$W/reg.receipt.json
ferry-install receipt -o "$RR" --registry "$LAB/lab" --plain-http >"$W/out" 2>"$W/err" ||
	fail "receipt --registry: $(cat "$W/err")"
cat "$W/out"
[ "$(jq '.receiptVersion' "$RR")" = 1 ] || fail "receiptVersion"
[ "$(jq '.bundles | length' "$RR")" = 0 ] || fail "a registry has no bundle identities"
# the images: the bundle's refs (push's PREFIX/ mapping inverted) at their digests
[ "$(jq -c '[.images[] | {ref, digest}] | sort' "$RR")" = "$(jq -c '[.images[] | {ref, digest}] | sort' "$R")" ] ||
	fail "the registry receipt's images differ from the bundle's: $(jq -c .images "$RR") vs $(jq -c .images "$R")"
[ "$(jq '.images | length' "$RR")" = 2 ] || fail "two images expected"
# the blobs: exactly the base's (manifests, configs, layers), with sizes
[ "$(jq -c '.blobs | sort_by(.digest)' "$RR")" = "$(jq -c '.blobs | sort_by(.digest)' "$R")" ] ||
	fail "the registry receipt's blobs differ from the bundle's"
jq -e --arg d "$other_layer" '[.blobs[] | select(.digest == $d)] | length == 0' "$RR" >/dev/null ||
	fail "a blob outside the prefix is in the receipt"

# a delta against the registry receipt leaves out the same blobs
ferry-build build "$V2" -o "$W/delta-reg.tar" --key "$W/k.key" --cache "$W/c3" --base "$RR" \
	>/dev/null 2>"$W/err" || fail "delta build against the registry receipt: $(cat "$W/err")"
om() { tar -xOf "$1" bundle.json | jq -c '.delta.omitted | sort_by(.digest)'; }
[ "$(om "$W/delta-reg.tar")" = "$(om "$W/delta.tar")" ] ||
	fail "the deltas omit different blobs: $(om "$W/delta-reg.tar") vs $(om "$W/delta.tar")"
[ "$(om "$W/delta-reg.tar" | jq length)" = 3 ] || fail "3 omitted blobs expected"
[ "$(tar -tf "$W/delta-reg.tar" | sort)" = "$(tar -tf "$W/delta.tar" | sort)" ] ||
	fail "the deltas hold different members"

# the whole catalog (no prefix): the lab/ and elsewhere/ repositories, named as they are
ferry-install receipt -o "$W/all.json" --registry "http://$LAB" >/dev/null 2>"$W/err" ||
	fail "receipt of the whole catalog: $(cat "$W/err")"
jq -e --arg d "$other_layer" '[.blobs[] | select(.digest == $d)] | length == 1' "$W/all.json" >/dev/null ||
	fail "the whole catalog lacks elsewhere/other's layer"
jq -e '[.images[].ref] | index("lab/docker.io/library/app:1") != null and index("elsewhere/other:1") != null' \
	"$W/all.json" >/dev/null || fail "the whole catalog's refs: $(jq -c '[.images[].ref]' "$W/all.json")"

# without credentials: a clear error, no file
REGISTRY_AUTH_FILE=/nonexistent expect_fail 1 "registry $LAB.*requires credentials .HTTP 401. and none were found" \
	ferry-install receipt -o "$W/x.json" --registry "$LAB/lab" --plain-http
# wrong credentials
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$LAB" "$(printf ferry:wrong | base64)" >"$T/bad.json"
REGISTRY_AUTH_FILE=$T/bad.json expect_fail 1 "registry $LAB.*401" \
	ferry-install receipt -o "$W/x.json" --registry "$LAB/lab" --plain-http
# a prefix that holds nothing
expect_fail 1 "registry $LAB: no repository under 'nothing'" \
	ferry-install receipt -o "$W/x.json" --registry "$LAB/nothing" --plain-http
[ -e "$W/x.json" ] && fail "a failed receipt was written"
# usage: --plain-http without --registry; a bad address (push's own check)
expect_fail 64 "usage" ferry-install receipt -o "$W/x.json" --plain-http --containerd /nonexistent
expect_fail 64 "HOST\[:PORT\]\[/PREFIX\]" ferry-install receipt -o "$W/x.json" --registry "u@$LAB/lab"

# --- hostile registries
cat >"$T/hostile.py" <<'EOF'
import http.server, json, sys
mode, port = sys.argv[1], int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def send(self, obj, link=None):
        b = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        if link:
            self.send_header("Link", link)
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        p = self.path
        page = int(p.split("page=")[1].split("&")[0]) if "page=" in p else 0
        if p == "/v2/":
            return self.send({})
        if mode == "paged":
            return self.paged(p, page)
        if p.startswith("/v2/_catalog"):
            if mode == "endless":
                names = ["p/r%d-%d" % (page, i) for i in range(1000)]
                return self.send({"repositories": names},
                                 '</v2/_catalog?n=100&page=%d>; rel="next"' % (page + 1))
            if mode == "empty":
                return self.send({"repositories": []},
                                 '</v2/_catalog?n=100&page=%d>; rel="next"' % (page + 1))
            if mode == "loop":
                return self.send({"repositories": ["p/a"]}, '</v2/_catalog?n=100>; rel="next"')
            if mode == "offsite":
                return self.send({"repositories": ["p/a"]},
                                 '<http://127.0.0.2:%d/v2/_catalog?page=1>; rel="next"' % port)
            if mode == "badname":
                return self.send({"repositories": ["p/../../etc"]})
            return self.send({"repositories": ["p/a"]})
        if p.startswith("/v2/p/a/tags/list"):
            tags = ["t%d-%d" % (page, i) for i in range(1000)]
            return self.send({"name": "p/a", "tags": tags},
                             '</v2/p/a/tags/list?n=100&page=%d>; rel="next"' % (page + 1))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
    # a well-behaved registry that pages everything (q/x is outside the
    # prefix p and has no manifests: asking for them fails)
    def paged(self, p, page):
        if p.startswith("/v2/_catalog"):
            pages = [["p/a", "q/x"], ["p/b"], []]
            return self.send({"repositories": pages[page]},
                             '</v2/_catalog?n=100&page=%d>; rel="next"' % (page + 1)
                             if page + 1 < len(pages) else None)
        for repo in MAN:
            if p.startswith("/v2/%s/tags/list" % repo):
                tags = sorted(t for t in MAN[repo] if not t.startswith("sha256:"))
                half = (len(tags) + 1) // 2
                chunk = tags[:half] if page == 0 else tags[half:]
                return self.send({"name": repo, "tags": chunk},
                                 '</v2/%s/tags/list?n=100&page=1>; rel="next"' % repo
                                 if page == 0 else None)
            pre = "/v2/%s/manifests/" % repo
            if p.startswith(pre) and p[len(pre):] in MAN[repo]:
                mt, b = MAN[repo][p[len(pre):]]
                self.send_response(200)
                self.send_header("Content-Type", mt)
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                return self.wfile.write(b)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()
import hashlib
def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()
MAN, IMAGES, BLOBS = {}, [], {}
OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
def image(repo, tag):
    cfg = {"mediaType": "application/vnd.oci.image.config.v1+json",
           "digest": sha(("cfg" + repo + tag).encode()), "size": 10 + len(tag)}
    lay = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
           "digest": sha(("layer" + tag).encode()), "size": 1000 + len(tag)}
    b = json.dumps({"schemaVersion": 2, "mediaType": OCI_M, "config": cfg, "layers": [lay]}).encode()
    for d in (cfg, lay):
        BLOBS[d["digest"]] = d["size"]
    BLOBS[sha(b)] = len(b)
    return b
if mode == "paged":
    for repo, tags in (("p/a", ["1", "2", "3"]), ("p/b", ["1"])):
        MAN[repo] = {}
        for t in tags:
            b = image(repo, t)
            MAN[repo][t] = (OCI_M, b)
            IMAGES.append({"ref": repo[2:] + ":" + t, "digest": sha(b)})
    # p/b:idx, an index of a child it holds and one it lacks (sparse)
    child = image("p/b", "child")
    MAN["p/b"][sha(child)] = (OCI_M, child)
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_I, "manifests": [
        {"mediaType": OCI_M, "digest": sha(child), "size": len(child),
         "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": OCI_M, "digest": sha(b"absent"), "size": 6,
         "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    MAN["p/b"]["idx"] = (OCI_I, idx)
    IMAGES.append({"ref": "b:idx", "digest": sha(idx)})
    BLOBS[sha(idx)] = len(idx)
    with open(sys.argv[3], "w") as f:
        json.dump({"images": sorted(IMAGES, key=lambda i: i["ref"]),
                   "blobs": sorted(({"digest": d, "size": n} for d, n in BLOBS.items()),
                                   key=lambda b: b["digest"])}, f)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
hostile() {
	hp=$(free_port)
	python3 "$T/hostile.py" "$1" "$hp" "$T/expected.json" &
	FERRY_PIDS="$FERRY_PIDS $!"
	wait_port "$hp"
}
# every list in pages (catalog: 3, tags: 2), an index with a child the
# registry lacks: the receipt is what the stub computed from what it serves
hostile paged
ferry-install receipt -o "$W/paged.json" --registry "127.0.0.1:$hp/p" --plain-http >/dev/null 2>"$W/err" ||
	fail "receipt of a paged registry: $(cat "$W/err")"
[ "$(jq -c '{images: (.images | sort_by(.ref)), blobs}' "$W/paged.json")" = "$(jq -c . "$T/expected.json")" ] ||
	fail "paged receipt: $(jq -c . "$W/paged.json") expected $(jq -c . "$T/expected.json")"
[ "$(jq '.images | length' "$W/paged.json")" = 5 ] || fail "5 images expected (a:1-3, b:1, b:idx)"
hostile endless
expect_fail 1 "registry 127.0.0.1:$hp: GET /v2/_catalog: more than 10000 repositories \(the cap\)" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
hostile empty
expect_fail 1 "registry 127.0.0.1:$hp: GET /v2/_catalog: more than 1000 pages \(the cap\)" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
hostile loop
expect_fail 1 "registry 127.0.0.1:$hp: GET /v2/_catalog: the next page is a page already read" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
hostile offsite
expect_fail 1 "registry 127.0.0.1:$hp: GET /v2/_catalog: a Link header's next page is on another origin" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
hostile badname
expect_fail 1 "registry 127.0.0.1:$hp: GET /v2/_catalog: repositories\[0\] is not a valid name" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
hostile tags
expect_fail 1 "registry 127.0.0.1:$hp: repository p/a: GET /v2/p/a/tags/list: more than 10000 tags \(the cap\)" \
	ferry-install receipt -o "$W/x.json" --registry "127.0.0.1:$hp/p" --plain-http
[ -e "$W/x.json" ] && fail "a failed receipt was written"
echo "ok"
