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
and against /work/shared/reference/supply-chain.md.

Keys (both types cosign makes, in cosign's own file format):
  - ECDSA P-256 (cosign pkg/cosign/keys.go GeneratePrivateKey) or Ed25519
    (keys.go GeneratePrivateKeyWithAlgorithm, ed25519.GenerateKey);
  - the private key file is keys.go marshalKeyPair: PKCS#8 DER
    (x509.MarshalPKCS8PrivateKey), encrypted by
    secure-systems-lab/go-securesystemslib encrypted/encrypted.go Encrypt
    (JSON {"kdf":{"name":"scrypt","params":{"N","r","p"},"salt"},
    "cipher":{"name":"nacl/secretbox","nonce"},"ciphertext"}, byte strings
    as standard base64 like Go's encoding/json; 32-byte salt, scrypt key of
    32 bytes with standardParams N=65536 r=8 p=1, 24-byte nonce,
    secretbox.Seal), in a PEM block "ENCRYPTED SIGSTORE PRIVATE KEY"
    (keys.go SigstorePrivateKeyPemType; LoadPrivateKey also reads the older
    "ENCRYPTED COSIGN PRIVATE KEY"). The password is $COSIGN_PASSWORD ("" when
    unset), as cosign reads it;
  - the public key is SPKI PEM "PUBLIC KEY" (sigstore pkg/cryptoutils
    MarshalPublicKeyToPEM).
Signatures: ECDSA is sigstore pkg/signature/ecdsa.go (SHA-256, ASN.1 DER);
Ed25519 is pkg/signature/ed25519.go ED25519Signer: pure Ed25519 over the
payload, which is what containers/image verifies (signature/internal/
sigstore_payload.go: LoadVerifier(key, SHA256) is pure Ed25519 for an
Ed25519 key).

  cosign_sign.py keygen DIR [ecdsa|ed25519]   DIR/cosign.key (encrypted),
                                              DIR/key.pem (plain PKCS#8), DIR/pub.pem
  cosign_sign.py sign HOST:PORT REPO DIGEST KEY IDENTITY   (KEY: either file)
  cosign_sign.py sbom HOST:PORT REPO DIGEST   (artifact + fallback index)
  cosign_sign.py copy HOST:PORT SRCREPO SRCTAG DSTREPO DSTTAG
                   (a manifest and its blobs, byte-exact: a replayed .sig)
  cosign_sign.py decrypt KEYFILE OUT.pem      (cosign.key -> PKCS#8 PEM)
Prints the digest of the manifest it pushed.
"""
import base64
import hashlib
import http.client
import json
import os
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

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


SIGSTORE_PEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM = "ENCRYPTED COSIGN PRIVATE KEY"


def pem_block(kind, der):
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n"
            % (kind, "\n".join(lines), kind)).encode()


def pem_unblock(data):
    text = data.decode()
    kind = text.split("-----BEGIN ", 1)[1].split("-----", 1)[0]
    body = text.split("-----\n", 1)[1].split("-----END", 1)[0]
    return kind, base64.b64decode("".join(body.split()))


def scrypt_key(password, salt, n, r, p):
    # go-securesystemslib encrypted.go scryptKDF.Key: scrypt.Key(pass, salt,
    # N, r, p, boxKeySize=32)
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password)


def encrypt(plain, password):
    # go-securesystemslib encrypted.go Encrypt: newScryptKDF(defaultParams =
    # standardParams), newSecretBoxCipher, secretbox.Seal; json.Marshal(data)
    import nacl.secret
    salt, nonce = os.urandom(32), os.urandom(24)
    n, r, p = 65536, 8, 1
    box = nacl.secret.SecretBox(scrypt_key(password, salt, n, r, p))
    ct = box.encrypt(plain, nonce).ciphertext  # Seal: tag + ciphertext
    b64 = lambda x: base64.b64encode(x).decode()
    return json.dumps({
        "kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p},
                "salt": b64(salt)},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(ct)}, separators=(",", ":")).encode()


def decrypt(data, password):
    # go-securesystemslib encrypted.go Decrypt: the scrypt parameters must
    # be one of the known sets (CheckParams), then secretbox.Open
    import nacl.secret
    j = json.loads(data)
    kdf, ciph = j["kdf"], j["cipher"]
    if kdf["name"] != "scrypt" or ciph["name"] != "nacl/secretbox":
        sys.exit("cosign_sign.py: unsupported kdf/cipher")
    prm = kdf["params"]
    if (prm["N"], prm["r"], prm["p"]) not in ((32768, 8, 1), (65536, 8, 1),
                                              (131072, 8, 1)):
        sys.exit("cosign_sign.py: unsupported scrypt parameters")
    key = scrypt_key(password, base64.b64decode(kdf["salt"]), prm["N"],
                     prm["r"], prm["p"])
    return nacl.secret.SecretBox(key).decrypt(
        base64.b64decode(j["ciphertext"]), base64.b64decode(ciph["nonce"]))


def password():
    return os.environ.get("COSIGN_PASSWORD", "").encode()


def load_key(keyfile):
    # cosign keys.go LoadPrivateKey: PEM type check, decrypt, PKCS#8 parse
    with open(keyfile, "rb") as f:
        data = f.read()
    if b"-----BEGIN ENCRYPTED " in data:
        kind, der = pem_unblock(data)
        if kind not in (SIGSTORE_PEM, COSIGN_PEM):
            sys.exit("cosign_sign.py: unsupported pem type " + kind)
        return serialization.load_der_private_key(decrypt(der, password()),
                                                  None)
    return serialization.load_pem_private_key(data, None)


def keygen(d, algo="ecdsa"):
    if algo == "ed25519":
        k = ed25519.Ed25519PrivateKey.generate()
    elif algo == "ecdsa":
        k = ec.generate_private_key(ec.SECP256R1())
    else:
        sys.exit("cosign_sign.py: key type ecdsa or ed25519, not " + algo)
    pkcs8 = k.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        import nacl.secret  # noqa: F401 (python3-nacl: the encrypted file)
        with open(os.path.join(d, "cosign.key"), "wb") as f:
            f.write(pem_block(SIGSTORE_PEM, encrypt(pkcs8, password())))
    except ImportError:  # key.pem still signs; sigstore_policy.sh needs nacl
        sys.stderr.write("cosign_sign.py: no python3-nacl, no cosign.key\n")
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(k.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()))
    with open(os.path.join(d, "pub.pem"), "wb") as f:
        f.write(k.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo))


def sign(hp, repo, dg, keyfile, identity):
    key = load_key(keyfile)
    payload = json.dumps({
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": dg},
            "type": "cosign container image signature"},
        "optional": None}, separators=(",", ":")).encode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(payload)  # pure Ed25519 (sigstore ED25519Signer)
    else:
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


def copy(hp, srepo, stag, drepo, dtag):
    body, mt = get_manifest(hp, srepo, stag)
    if body is None:
        sys.exit("%s:%s not found" % (srepo, stag))
    m = json.loads(body)
    for d in [m["config"]] + m.get("layers", []):
        st, _, blob = req(hp, "GET", "/v2/%s/blobs/%s" % (srepo, d["digest"]))
        if st != 200:
            sys.exit("blob %s: %d" % (d["digest"], st))
        put_blob(hp, drepo, blob)
    return put_manifest(hp, drepo, dtag, body, mt)


def main(a):
    if len(a) in (2, 3) and a[0] == "keygen":
        keygen(*a[1:])
    elif len(a) == 3 and a[0] == "decrypt":
        pkcs8 = load_key(a[1]).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        with open(a[2], "wb") as f:
            f.write(pkcs8)
    elif len(a) == 6 and a[0] == "copy":
        print(copy(*a[1:]))
    elif len(a) == 6 and a[0] == "sign":
        print(sign(a[1], a[2], a[3], a[4], a[5]))
    elif len(a) == 4 and a[0] == "sbom":
        print(sbom(a[1], a[2], a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
