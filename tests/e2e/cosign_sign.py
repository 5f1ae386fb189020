#!/usr/bin/env python3
"""Test signer: signs an image in a local registry the way `cosign sign --key`
does, and pushes an OCI 1.1 artifact with a `subject` (plus its fallback
index) the way OCI 1.1 clients do against a registry without the referrers API.
Loopback, plain HTTP only (http.client); keys from python3-cryptography.

Checked against sigstore/cosign:
  - pkg/types/media.go: SimpleSigningMediaType
    "application/vnd.dev.cosign.simplesigning.v1+json" (the layer's type);
  - pkg/oci/static/signature.go: the signature is the layer annotation
    "dev.cosignproject.cosign/signature" (base64), the layer blob is the payload;
  - the payload is sigstore/sigstore's simple-signing form (payload.go):
    {"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
     "type":"cosign container image signature"},"optional":null};
  - the tag is "sha256-<hex>.sig" (pkg/oci/remote: SignatureTagSuffix),
and against /work/shared/reference/supply-chain.md. The key here is a plain
PEM ECDSA P-256 key (not the scrypt/secretbox-encrypted cosign key file): the
signature bytes and the registry objects are the same.

  cosign_sign.py keygen DIR                 DIR/key.pem, DIR/pub.pem
  cosign_sign.py sign HOST:PORT REPO DIGEST KEY IDENTITY
  cosign_sign.py sbom HOST:PORT REPO DIGEST   (artifact + fallback index)
Prints the digest of the manifest it pushed.
"""
import base64
import hashlib
import http.client
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def loopback(hostport):
    host = hostport.rsplit(":", 1)[0]
    if not (host.startswith("127.") or host == "localhost"):
        sys.exit("cosign_sign.py: loopback registries only, not " + host)
    return hostport


def req(hostport, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(loopback(hostport), timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = dict((k.lower(), v) for k, v in r.getheaders())
    c.close()
    return r.status, hdrs, data


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def put_blob(hp, repo, data):
    d = digest(data)
    st, _, _ = req(hp, "HEAD", "/v2/%s/blobs/%s" % (repo, d))
    if st == 200:
        return d
    st, h, body = req(hp, "POST", "/v2/%s/blobs/uploads/" % repo, b"")
    if st != 202:
        sys.exit("upload start: %d %r" % (st, body))
    loc = h["location"]
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    loc += ("&" if "?" in loc else "?") + "digest=" + d
    st, _, body = req(hp, "PUT", loc, data,
                      {"Content-Type": "application/octet-stream",
                       "Content-Length": str(len(data))})
    if st != 201:
        sys.exit("blob put: %d %r" % (st, body))
    return d


def put_manifest(hp, repo, ref, data, mt):
    st, _, body = req(hp, "PUT", "/v2/%s/manifests/%s" % (repo, ref), data,
                      {"Content-Type": mt})
    if st != 201:
        sys.exit("manifest put %s: %d %r" % (ref, st, body))
    return digest(data)


def get_manifest(hp, repo, ref):
    st, h, body = req(hp, "GET", "/v2/%s/manifests/%s" % (repo, ref), None,
                      {"Accept": OCI_MANIFEST + "," + OCI_INDEX +
                       ",application/vnd.docker.distribution.manifest.v2+json"})
    return (body, h.get("content-type", "")) if st == 200 else (None, None)


def keygen(d):
    k = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(os.path.join(d, "pub.pem"), "wb") as f:
        f.write(k.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))


def sign(hp, repo, dg, keyfile, identity):
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    payload = json.dumps({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": dg},
            "type": "cosign container image signature"},
        "optional": None}, separators=(",", ":")).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))  # ASN.1 DER
    cfg = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                      "history": [{"created": "0001-01-01T00:00:00Z"}],
                      "os": "", "rootfs": {"type": "layers", "diff_ids": [
                          digest(payload)]}, "config": {}},
                     separators=(",", ":")).encode()
    man = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "size": len(cfg), "digest": put_blob(hp, repo, cfg)},
        "layers": [{"mediaType": SIMPLESIGNING, "size": len(payload),
                    "digest": put_blob(hp, repo, payload),
                    "annotations": {"dev.cosignproject.cosign/signature":
                                    base64.b64encode(sig).decode()}}]},
        separators=(",", ":")).encode()
    return put_manifest(hp, repo, dg.replace(":", "-") + ".sig", man,
                        OCI_MANIFEST)


def sbom(hp, repo, dg):
    body, mt = get_manifest(hp, repo, dg)
    if body is None:
        sys.exit("subject %s not in %s" % (dg, repo))
    doc = json.dumps({"spdxVersion": "SPDX-2.3", "name": "test-sbom",
                      "packages": []}).encode()
    empty = b"{}"
    man = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": EMPTY, "size": 2,
                   "digest": put_blob(hp, repo, empty)},
        "layers": [{"mediaType": "application/spdx+json", "size": len(doc),
                    "digest": put_blob(hp, repo, doc)}],
        "subject": {"mediaType": mt, "size": len(body), "digest": dg},
        "annotations": {"org.opencontainers.image.created":
                        "2026-01-01T00:00:00Z"}},
        separators=(",", ":")).encode()
    md = put_manifest(hp, repo, digest(man), man, OCI_MANIFEST)
    # the fallback tag: an index listing the referrers (kept by the client)
    tag = dg.replace(":", "-")
    old, _ = get_manifest(hp, repo, tag)
    items = json.loads(old)["manifests"] if old else []
    items = [i for i in items if i["digest"] != md]
    items.append({"mediaType": OCI_MANIFEST, "digest": md, "size": len(man),
                  "artifactType": "application/spdx+json",
                  "annotations": {"org.opencontainers.image.created":
                                  "2026-01-01T00:00:00Z"}})
    idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                      "manifests": items}, separators=(",", ":")).encode()
    put_manifest(hp, repo, tag, idx, OCI_INDEX)
    return md


def main(a):
    if len(a) == 2 and a[0] == "keygen":
        keygen(a[1])
    elif len(a) == 6 and a[0] == "sign":
        print(sign(a[1], a[2], a[3], a[4], a[5]))
    elif len(a) == 4 and a[0] == "sbom":
        print(sbom(a[1], a[2], a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
